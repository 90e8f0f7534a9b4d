defmodule Snakepit.CircuitBreaker do
  @moduledoc """
  A circuit breaker for any operation, as upstream Snakepit's (v0.13): after
  `:failure_threshold` failures it opens and refuses calls with `{:error, :circuit_open}`;
  `:reset_timeout_ms` after the last failure it lets `:half_open_max_calls` calls through to
  probe, closing again on a success and opening again on a failure.

      {:ok, cb} = Snakepit.CircuitBreaker.start_link(failure_threshold: 3)

      case Snakepit.CircuitBreaker.call(cb, fn -> Snakepit.execute("predict", args) end) do
        {:ok, result} -> result
        {:error, :circuit_open} -> :try_later
        {:error, error} -> {:failed, error}
      end

  A call's result decides: `{:error, _}`, a raise, a throw or an exit is a failure (the
  exception is raised again to the caller), anything else a success. Failures count from the
  moment the circuit last closed; successes in the closed state do not reset the count (as
  upstream).

  Each pool already has its own breaker for worker starts (`:max_start_failures`,
  `:circuit_open` errors); this one is for the caller's own policy. Upstream's telemetry events
  are not emitted (snakepit_rs has no `:telemetry` dependency).
  """

  use GenServer

  # `use GenServer` defines child_spec/1 (and its doc); its spec:
  @spec child_spec(keyword()) :: Supervisor.child_spec()

  @typedoc "The circuit's state."
  @type state :: :closed | :open | :half_open

  ## API

  @doc """
  Starts a circuit breaker. Options: `:name` (optional), `:failure_threshold` (default `5`),
  `:reset_timeout_ms` (default `30000`), `:half_open_max_calls` (default `1`), and `:clock`, a
  function returning the time in ms (default: monotonic time; tests pass their own).
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    gen_opts = if name = opts[:name], do: [name: name], else: []
    GenServer.start_link(__MODULE__, opts, gen_opts)
  end

  @doc "The circuit's state now."
  @spec state(GenServer.server()) :: state()
  def state(server), do: GenServer.call(server, :state)

  @doc "Whether a call would be let through now (does not count as a half-open probe)."
  @spec allow_call?(GenServer.server()) :: boolean()
  def allow_call?(server), do: GenServer.call(server, :allow_call?)

  @doc "Records a successful call (for callers that run the operation themselves)."
  @spec record_success(GenServer.server()) :: :ok
  def record_success(server), do: GenServer.cast(server, :success)

  @doc "Records a failed call (for callers that run the operation themselves)."
  @spec record_failure(GenServer.server()) :: :ok
  def record_failure(server), do: GenServer.cast(server, :failure)

  @doc """
  Runs `fun` in the caller if the circuit lets it through, and records its outcome; returns
  `fun`'s result, or `{:error, :circuit_open}` without running it.
  """
  @spec call(GenServer.server(), (() -> result)) :: result | {:error, :circuit_open}
        when result: term()
  def call(server, fun) when is_function(fun, 0) do
    if GenServer.call(server, :try_call) do
      run(server, fun)
    else
      {:error, :circuit_open}
    end
  end

  @doc """
  `state`, `failure_count`, `success_count`, `failure_threshold` and `half_open_calls` (probes
  let through since the circuit became half-open).
  """
  @spec stats(GenServer.server()) :: map()
  def stats(server), do: GenServer.call(server, :stats)

  @doc "Closes the circuit and clears its failures."
  @spec reset(GenServer.server()) :: :ok
  def reset(server), do: GenServer.cast(server, :reset)

  defp run(server, fun) do
    result = fun.()
    if match?({:error, _}, result), do: record_failure(server), else: record_success(server)
    result
  catch
    kind, reason ->
      record_failure(server)
      :erlang.raise(kind, reason, __STACKTRACE__)
  end

  ## Server

  @impl true
  def init(opts) do
    {:ok,
     %{
       state: :closed,
       failure_count: 0,
       success_count: 0,
       half_open_calls: 0,
       last_failure: nil,
       failure_threshold: Keyword.get(opts, :failure_threshold, 5),
       reset_timeout_ms: Keyword.get(opts, :reset_timeout_ms, 30_000),
       half_open_max_calls: Keyword.get(opts, :half_open_max_calls, 1),
       clock: Keyword.get(opts, :clock, fn -> System.monotonic_time(:millisecond) end)
     }}
  end

  @impl true
  def handle_call(request, _from, cb) do
    cb = maybe_half_open(cb)

    case request do
      :state ->
        {:reply, cb.state, cb}

      :allow_call? ->
        {:reply, cb.state == :closed or probe_left?(cb), cb}

      :try_call ->
        cond do
          cb.state == :closed -> {:reply, true, cb}
          probe_left?(cb) -> {:reply, true, %{cb | half_open_calls: cb.half_open_calls + 1}}
          true -> {:reply, false, cb}
        end

      :stats ->
        keys = [:state, :failure_count, :success_count, :failure_threshold, :half_open_calls]
        {:reply, Map.take(cb, keys), cb}
    end
  end

  @impl true
  def handle_cast(:success, cb) do
    cb = %{cb | success_count: cb.success_count + 1}

    if cb.state == :half_open,
      do: {:noreply, close(cb)},
      else: {:noreply, cb}
  end

  def handle_cast(:failure, cb) do
    cb = %{cb | failure_count: cb.failure_count + 1, last_failure: cb.clock.()}

    case cb.state do
      :closed when cb.failure_count >= cb.failure_threshold -> {:noreply, %{cb | state: :open}}
      :half_open -> {:noreply, %{cb | state: :open, half_open_calls: 0}}
      _ -> {:noreply, cb}
    end
  end

  def handle_cast(:reset, cb), do: {:noreply, %{close(cb) | last_failure: nil}}

  defp close(cb), do: %{cb | state: :closed, failure_count: 0, half_open_calls: 0}

  defp probe_left?(cb), do: cb.state == :half_open and cb.half_open_calls < cb.half_open_max_calls

  # An open circuit becomes half-open once `reset_timeout_ms` passed since the last failure;
  # checked whenever someone asks, so no timer is needed.
  defp maybe_half_open(%{state: :open, last_failure: last} = cb) when last != nil do
    if cb.clock.() - last >= cb.reset_timeout_ms,
      do: %{cb | state: :half_open, half_open_calls: 0},
      else: cb
  end

  defp maybe_half_open(cb), do: cb
end
