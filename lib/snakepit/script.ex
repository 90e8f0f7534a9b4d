defmodule Snakepit.Script do
  @moduledoc """
  `Snakepit.run_as_script/2`: start what is needed, wait for the pools, run the function, stop
  what this call started (per `:stop_mode`), then end the VM or return (per `:exit_mode`).

  What it counts as started by itself: the Snakepit application when it was not running (under
  either name, see `Snakepit.Applications`), and the default pool `Snakepit.Pool` when it had
  to start one under a running application. Pools the host application started are waited for
  but never stopped, unless `stop_mode: :always` (which stops the application, as upstream
  does).
  """

  require Logger

  alias Snakepit.{Applications, Cleanup, Error, Pool}
  alias Snakepit.Script.Options

  @doc "See `Snakepit.run_as_script/2`."
  @spec run((() -> result), keyword()) ::
          result | {:error, :pool_initialization_timeout | Error.t()}
        when result: term()
  def run(fun, opts) when is_function(fun, 0) and is_list(opts) do
    options = Options.resolve!(opts, System.get_env(), Snakepit.Config.pooling_enabled?())
    Enum.each(options.warnings, &Logger.warning/1)

    maybe_restart(options)
    # Owning Snakepit means starting its supervision tree, not merely an application name.
    owned? = not Applications.tree_running?()
    started_apps = started!(Applications.ensure_started())
    exit_mode = Options.effective_exit_mode(options.exit_mode, owned?, Options.no_halt?())

    {startup, owned_pool} = start_pools(options)

    outcome =
      with :ok <- startup do
        try do
          {:ok, fun.()}
        catch
          kind, reason -> {:raised, kind, reason, __STACKTRACE__}
        end
      end

    stop(options, started_apps, if(owned?, do: nil, else: owned_pool))
    exit_vm(exit_mode, if(match?({:ok, _}, outcome), do: 0, else: 1))

    case outcome do
      {:ok, value} -> value
      {:raised, kind, reason, stacktrace} -> :erlang.raise(kind, reason, stacktrace)
      {:error, _} = error -> error
    end
  end

  ## Starting

  # A configuration error raises as it would at the application's own start (an `ArgumentError`
  # naming the key), not as a match error here.
  defp started!({:ok, started_apps}), do: started_apps

  defp started!({:error, reason}) do
    case argument_error(reason) do
      nil -> raise RuntimeError, "Snakepit could not start: #{inspect(reason)}"
      error -> raise error
    end
  end

  # The `ArgumentError` somewhere in an application's start failure (its shape varies).
  defp argument_error(%ArgumentError{} = error), do: error

  defp argument_error(term) when is_tuple(term),
    do: term |> Tuple.to_list() |> Enum.find_value(&argument_error/1)

  defp argument_error(_term), do: nil

  # `restart: true` (or `:auto` with `stop_mode: :always` in a Mix project, as upstream) stops a
  # running Snakepit so that it starts again from the current configuration, and is then this
  # call's own.
  defp maybe_restart(options) do
    running = Applications.running()

    if running != [] and restart?(options.restart, options.stop_mode) do
      Logger.info("run_as_script: restarting Snakepit to apply the current configuration")
      # Only the application that carries the tree: the host's own `:snakepit_rs` stays.
      Applications.stop(Enum.filter(running, &(&1 == :snakepit)))
    end
  end

  defp restart?(true, _stop_mode), do: true
  defp restart?(:auto, :always), do: mix_project?()
  defp restart?(_restart, _stop_mode), do: false

  defp mix_project? do
    Code.ensure_loaded?(Mix.Project) and
      Enum.any?(Application.started_applications(), &match?({:mix, _, _}, &1)) and
      Mix.Project.get() != nil
  end

  # Waits for the pools the application's configuration started, and for `Snakepit.Pool`,
  # starting it from the configuration (and `:pool_options`) when it does not run and either
  # the application started no pool or `:pool_options` asks for it. Returns the outcome and the
  # pid of the pool it started, if any.
  defp start_pools(%{await_pool: false}), do: {:ok, nil}

  defp start_pools(options) do
    deadline = deadline(options.timeout)
    app_pools = Enum.map(configured_pools(), &elem(&1, 0))

    {started, owned_pool} =
      if Process.whereis(Pool) == nil and
           (app_pools == [] or options.pool_options != []),
         do: start_default_pool(options.pool_options),
         else: {:ok, nil}

    default = if Process.whereis(Pool), do: [Pool], else: []

    with :ok <- started,
         :ok <- await(Enum.uniq(app_pools ++ default), deadline) do
      {:ok, owned_pool}
    else
      {:error, _} = error -> {error, owned_pool}
    end
  rescue
    # An invalid pool option: nothing was started; raised to the caller after the stop.
    error in ArgumentError -> {{:raised, :error, error, __STACKTRACE__}, nil}
  end

  defp start_default_pool(pool_options) do
    opts = Keyword.merge(Snakepit.Config.pool_options(), pool_options)

    case DynamicSupervisor.start_child(Snakepit.PoolSupervisor, {Pool, opts}) do
      {:ok, pid} ->
        {:ok, pid}

      {:error, reason} ->
        {{:error, Error.new(:pool_not_initialized, "cannot start the pool: #{inspect(reason)}")},
         nil}
    end
  end

  defp await([], _deadline), do: :ok

  defp await([pool | pools], deadline) do
    case Pool.await_ready(pool, remaining(deadline)) do
      :ok ->
        await(pools, deadline)

      {:error, error} ->
        # Upstream's result for a pool not ready in time; any other failure is returned as is.
        if remaining(deadline) == 0,
          do: {:error, :pool_initialization_timeout},
          else: {:error, error}
    end
  end

  defp deadline(:infinity), do: :infinity
  defp deadline(ms), do: System.monotonic_time(:millisecond) + ms

  defp remaining(:infinity), do: :infinity
  defp remaining(deadline), do: max(deadline - System.monotonic_time(:millisecond), 0)

  ## Stopping

  # `started_apps`: the application names this call started; `owned_pool`: the default pool it
  # started under a supervision tree it did not start (one it started goes with its tree).
  defp stop(options, started_apps, owned_pool) do
    {stop_apps, stop_pool} =
      case options.stop_mode do
        :never -> {[], nil}
        :always -> {Applications.running(), nil}
        :if_started -> {started_apps, owned_pool}
      end

    # Each pool that may stop, with its workers' OS pids: afterwards, the workers of those that
    # did stop must be gone. Pools that keep running are never touched.
    candidates =
      if options.cleanup_timeout > 0 and (stop_apps != [] or stop_pool != nil),
        do:
          for(
            pool <- Enum.uniq(tree_pools() ++ List.wrap(stop_pool)),
            do: {pool, Pool.os_pids(pool)}
          ),
        else: []

    Applications.stop(stop_apps)
    if stop_pool, do: DynamicSupervisor.terminate_child(Snakepit.PoolSupervisor, stop_pool)

    os_pids = for {pool, pids} <- candidates, not Process.alive?(pool), pid <- pids, do: pid

    with {:timeout, survivors} <- Cleanup.run(os_pids, options.cleanup_timeout) do
      Logger.warning("run_as_script: worker processes #{inspect(survivors)} survived SIGKILL")
    end
  end

  # The pids of every pool in Snakepit's supervision tree: configured and started at run time.
  defp tree_pools do
    dynamic =
      case Process.whereis(Snakepit.PoolSupervisor) do
        nil -> []
        sup -> for {_, pid, _, _} <- DynamicSupervisor.which_children(sup), is_pid(pid), do: pid
      end

    Enum.map(configured_pools(), &elem(&1, 1)) ++ dynamic
  end

  # The pools the application started from its configuration, as `{name, pid}`: children of
  # its supervisor (or of a supervisor under it) whose child id is `{Snakepit.Pool, name}`.
  defp configured_pools, do: pools_under(Process.whereis(Snakepit.Supervisor))

  defp pools_under(nil), do: []

  defp pools_under(supervisor) do
    Enum.flat_map(Supervisor.which_children(supervisor), fn
      {{Pool, name}, pid, _, _} when is_pid(pid) -> [{name, pid}]
      {_, pid, :supervisor, _} when is_pid(pid) and pid != supervisor -> nested_pools(pid)
      _ -> []
    end)
  end

  # A DynamicSupervisor's children have no ids: those pools were started at run time.
  defp nested_pools(pid) do
    if Process.whereis(Snakepit.PoolSupervisor) == pid, do: [], else: pools_under(pid)
  end

  defp exit_vm(:none, _status), do: :ok
  defp exit_vm(:halt, status), do: System.halt(status)

  defp exit_vm(:stop, status) do
    System.stop(status)
    # The VM stops asynchronously; the script must not go on meanwhile.
    Process.sleep(:infinity)
  end
end
