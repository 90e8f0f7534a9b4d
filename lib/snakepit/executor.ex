defmodule Snakepit.Executor do
  @moduledoc """
  Ways to run an operation (any function) with a retry policy, a circuit breaker, a timeout or
  in parallel, as upstream Snakepit's (v0.13), where it is a legacy module kept for
  compatibility: new code can combine `Snakepit.RetryPolicy` and `Snakepit.CircuitBreaker`
  itself.

      Snakepit.Executor.execute_with_retry(fn -> Snakepit.execute("fetch", %{}) end,
        max_attempts: 3, backoff_ms: [100, 200])

  Upstream's telemetry events are not emitted (snakepit_rs has no `:telemetry` dependency).
  """

  alias Snakepit.{CircuitBreaker, RetryPolicy}

  @doc "Runs `fun` and returns its result."
  @spec execute((() -> result), keyword()) :: result when result: term()
  def execute(fun, _opts \\ []) when is_function(fun, 0), do: fun.()

  @doc """
  Runs `fun` until it returns `{:ok, _}` or `:ok`, a result the policy does not retry, or the
  policy's attempts run out, sleeping the policy's backoff between attempts; returns the last
  result. Options are `Snakepit.RetryPolicy.new/1`'s.
  """
  @spec execute_with_retry((() -> result), keyword()) :: result when result: term()
  def execute_with_retry(fun, opts \\ []) when is_function(fun, 0),
    do: retry(fun, RetryPolicy.new(opts), 1)

  defp retry(fun, policy, attempt) do
    result = fun.()

    if not success?(result) and RetryPolicy.retry_for_error?(policy, result) and
         RetryPolicy.should_retry?(policy, attempt) do
      Process.sleep(RetryPolicy.backoff_for_attempt(policy, attempt))
      retry(fun, policy, attempt + 1)
    else
      result
    end
  end

  defp success?(result), do: result == :ok or match?({:ok, _}, result)

  @doc "Runs `fun` through `circuit_breaker` (`Snakepit.CircuitBreaker.call/2`)."
  @spec execute_with_circuit_breaker(GenServer.server(), (() -> result), keyword()) ::
          result | {:error, :circuit_open}
        when result: term()
  def execute_with_circuit_breaker(circuit_breaker, fun, _opts \\ []) when is_function(fun, 0),
    do: CircuitBreaker.call(circuit_breaker, fun)

  @doc """
  Runs `fun` in a process of its own for at most `opts[:timeout_ms]` (required): returns its
  result, `{:error, :timeout}` (the process is killed), or `{:error, {:task_crashed, reason}}`.
  """
  @spec execute_with_timeout((() -> result), keyword()) :: result | {:error, term()}
        when result: term()
  def execute_with_timeout(fun, opts) when is_function(fun, 0) do
    case isolated(fun, Keyword.fetch!(opts, :timeout_ms)) do
      {:ok, result} -> result
      {:error, :timeout} -> {:error, :timeout}
      {:error, reason} -> {:error, {:task_crashed, reason}}
    end
  end

  @doc "Runs `fun` in a `Task` (linked to the caller) and returns the task."
  @spec execute_async((() -> term()), keyword()) :: Task.t()
  def execute_async(fun, _opts \\ []) when is_function(fun, 0), do: Task.async(fun)

  @doc """
  Runs `functions` in parallel (at most `:max_concurrency` at a time, default all) and returns
  their results in order. One that raises or runs longer than `:timeout_ms` (default `30000`)
  gives `{:error, {:exit, reason}}` (`reason` is `:timeout` for the latter) and does not
  disturb the others or the caller.
  """
  @spec execute_batch([(() -> term())], keyword()) :: [term()]
  def execute_batch(functions, opts \\ []) when is_list(functions) do
    timeout_ms = Keyword.get(opts, :timeout_ms, 30_000)

    functions
    |> Task.async_stream(&isolated(&1, timeout_ms),
      max_concurrency: max(Keyword.get(opts, :max_concurrency, length(functions)), 1),
      timeout: :infinity
    )
    |> Enum.map(fn
      {:ok, {:ok, result}} -> result
      {:ok, {:error, reason}} -> {:error, {:exit, reason}}
    end)
  end

  @doc """
  `execute_with_retry/2` around `execute_with_circuit_breaker/3`: each attempt goes through
  the breaker (an open circuit's `{:error, :circuit_open}` is retried only if the policy lists
  `:circuit_open`).
  """
  @spec execute_with_protection(GenServer.server(), (() -> result), keyword()) ::
          result | {:error, :circuit_open}
        when result: term()
  def execute_with_protection(circuit_breaker, fun, opts \\ []) when is_function(fun, 0),
    do: execute_with_retry(fn -> CircuitBreaker.call(circuit_breaker, fun) end, opts)

  # Runs `fun` in a monitored process: `{:ok, result}`, `{:error, :timeout}` after `timeout_ms`
  # (the process is killed), or `{:error, reason}` if it raised, threw or exited (`reason` as a
  # process's exit reason would be, without a crash report in the log).
  defp isolated(fun, timeout_ms) do
    caller = self()
    tag = make_ref()
    {pid, monitor} = spawn_monitor(fn -> send(caller, {tag, catching(fun)}) end)

    receive do
      {^tag, outcome} ->
        Process.demonitor(monitor, [:flush])
        outcome

      {:DOWN, ^monitor, :process, ^pid, reason} ->
        {:error, reason}
    after
      timeout_ms ->
        Process.exit(pid, :kill)
        Process.demonitor(monitor, [:flush])
        # An outcome sent just before the kill must not stay in the caller's mailbox.
        receive do
          {^tag, _} -> :ok
        after
          0 -> :ok
        end

        {:error, :timeout}
    end
  end

  defp catching(fun) do
    {:ok, fun.()}
  catch
    :error, error ->
      {:error, {Exception.normalize(:error, error, __STACKTRACE__), __STACKTRACE__}}

    :throw, value ->
      {:error, {{:nocatch, value}, __STACKTRACE__}}

    :exit, reason ->
      {:error, reason}
  end
end
