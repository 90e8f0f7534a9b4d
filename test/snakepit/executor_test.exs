defmodule Snakepit.ExecutorTest do
  use ExUnit.Case, async: true

  alias Snakepit.{CircuitBreaker, Executor}

  # A function whose results come from `results`, one per call, counting its calls.
  defp scripted(results) do
    {:ok, agent} = Agent.start_link(fn -> {results, 0} end)

    fun = fn ->
      Agent.get_and_update(agent, fn {[result | rest], calls} ->
        {result, {if(rest == [], do: [result], else: rest), calls + 1}}
      end)
    end

    {fun, fn -> Agent.get(agent, &elem(&1, 1)) end}
  end

  test "execute/2 runs the function" do
    assert Executor.execute(fn -> {:ok, 1} end) == {:ok, 1}
  end

  test "execute_with_retry/2 retries retriable errors until success" do
    {fun, calls} = scripted([{:error, :timeout}, {:error, :unavailable}, {:ok, :done}])
    assert Executor.execute_with_retry(fun, max_attempts: 5, backoff_ms: [0]) == {:ok, :done}
    assert calls.() == 3
  end

  test "execute_with_retry/2 stops at max_attempts, and at once on a non-retriable error" do
    {fun, calls} = scripted([{:error, :timeout}])

    assert Executor.execute_with_retry(fun, max_attempts: 3, backoff_ms: [0]) ==
             {:error, :timeout}

    assert calls.() == 3

    {fun, calls} = scripted([{:error, :bad_input}, {:ok, :never}])
    assert Executor.execute_with_retry(fun, backoff_ms: [0]) == {:error, :bad_input}
    assert calls.() == 1
  end

  test "execute_with_timeout/2: the result, {:error, :timeout}, or the crash" do
    assert Executor.execute_with_timeout(fn -> {:ok, :fast} end, timeout_ms: 5_000) ==
             {:ok, :fast}

    parent = self()

    assert Executor.execute_with_timeout(
             fn ->
               send(parent, {:running, self()})
               receive do: (:never -> :ok)
             end,
             timeout_ms: 10
           ) == {:error, :timeout}

    assert_receive {:running, pid}
    refute Process.alive?(pid)

    assert {:error, {:task_crashed, {%RuntimeError{message: "x"}, _}}} =
             Executor.execute_with_timeout(fn -> raise "x" end, timeout_ms: 5_000)
  end

  test "execute_batch/2 keeps the order; a crash or timeout is an error in its place" do
    results =
      Executor.execute_batch(
        [
          fn -> {:ok, 1} end,
          fn -> raise "x" end,
          fn -> receive do: (:never -> :ok) end,
          fn -> {:error, :failed} end
        ],
        max_concurrency: 2,
        timeout_ms: 50
      )

    assert [
             {:ok, 1},
             {:error, {:exit, {%RuntimeError{}, _}}},
             {:error, {:exit, :timeout}},
             {:error, :failed}
           ] = results
  end

  test "execute_async/2 returns a task" do
    assert Executor.execute_async(fn -> 42 end) |> Task.await() == 42
  end

  test "execute_with_protection/3 retries through the circuit breaker" do
    {:ok, cb} = CircuitBreaker.start_link(failure_threshold: 5)
    {fun, calls} = scripted([{:error, :timeout}, {:ok, :done}])
    assert Executor.execute_with_protection(cb, fun, backoff_ms: [0]) == {:ok, :done}
    assert calls.() == 2
    assert %{failure_count: 1, success_count: 1} = CircuitBreaker.stats(cb)

    assert Executor.execute_with_circuit_breaker(cb, fn -> :ok end) == :ok
  end
end
