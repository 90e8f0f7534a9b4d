defmodule Snakepit.BeamWorkers do
  @moduledoc """
  The pool owner's side of its `Snakepit.BeamWorker` processes (a pool of an `execute/3`
  adapter; `nil` for any other): it spawns them when the native pool asks, kills them when it
  says so (a NIF cannot send an exit signal), reports their exits, and stops them when the pool
  stops.

  `Snakepit.Pool` passes it what it receives: `{:snakepit_beam, {:start, slot, uid, id}}` and
  `{:snakepit_beam, {:kill, uid}}` from the native pool, and the `{:EXIT, pid, reason}` of its
  linked workers.
  """

  alias Snakepit.{BeamWorker, Native}

  defstruct [:adapter, :opts, :grace, workers: %{}]

  @typedoc "The adapter, the pool's options, the stop grace (ms), and live workers: pid => uid."
  @type t :: %__MODULE__{
          adapter: module(),
          opts: keyword(),
          grace: non_neg_integer(),
          workers: %{pid() => pos_integer()}
        }

  @doc "The set for a pool with `opts` (validated), or `nil` unless its adapter runs in the BEAM."
  @spec new(keyword()) :: t() | nil
  def new(opts) do
    if Snakepit.Adapter.style(opts[:adapter_module]) == :beam do
      %__MODULE__{adapter: opts[:adapter_module], opts: opts, grace: opts[:shutdown_grace]}
    end
  end

  @doc "Carries out an order of the native pool `native`."
  @spec handle(t() | nil, reference(), term()) :: t() | nil
  def handle(%__MODULE__{} = set, native, {:start, slot, uid, id}) do
    pid = BeamWorker.start_link(native, set.adapter, set.opts, slot, uid, id)
    %{set | workers: Map.put(set.workers, pid, uid)}
  end

  def handle(%__MODULE__{} = set, _native, {:kill, uid}) do
    for {pid, ^uid} <- set.workers, do: Process.exit(pid, :kill)
    set
  end

  def handle(set, _native, _order), do: set

  @doc "`from` exited with `reason`: if it is a worker, the native pool hears of it."
  @spec exited(t() | nil, reference(), pid() | port(), term()) :: t() | nil
  def exited(%__MODULE__{} = set, native, from, reason) do
    case Map.pop(set.workers, from) do
      {nil, _} ->
        set

      {uid, workers} ->
        Native.beam_worker_exit(native, uid, describe(reason))
        %{set | workers: workers}
    end
  end

  def exited(set, _native, _from, _reason), do: set

  @doc """
  Stops every worker: those asked to exit (the native pool's stop closed them) have the grace
  period to finish; then the rest are killed. Returns once all are gone.
  """
  @spec stop(t() | nil) :: :ok
  def stop(%__MODULE__{workers: workers, grace: grace}) do
    monitors = Map.new(workers, fn {pid, _uid} -> {Process.monitor(pid), pid} end)
    deadline = System.monotonic_time(:millisecond) + grace
    left = await_down(monitors, deadline)
    Enum.each(left, fn {_ref, pid} -> Process.exit(pid, :kill) end)
    # A kill cannot be ignored: the wait is short.
    await_down(left, :infinity)
    :ok
  end

  def stop(nil), do: :ok

  defp await_down(monitors, _deadline) when map_size(monitors) == 0, do: monitors

  defp await_down(monitors, deadline) do
    wait =
      if deadline == :infinity,
        do: :infinity,
        else: max(deadline - System.monotonic_time(:millisecond), 0)

    receive do
      {:DOWN, ref, :process, _pid, _reason} when is_map_key(monitors, ref) ->
        await_down(Map.delete(monitors, ref), deadline)
    after
      wait -> monitors
    end
  end

  defp describe({:snakepit_init_failed, message}), do: message
  defp describe(reason), do: "exit: " <> Exception.format_exit(reason)
end
