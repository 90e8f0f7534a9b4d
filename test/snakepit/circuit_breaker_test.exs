defmodule Snakepit.CircuitBreakerTest do
  use ExUnit.Case, async: true

  alias Snakepit.CircuitBreaker

  # A clock the test moves by hand.
  defp clock do
    time = :atomics.new(1, [])
    {fn -> :atomics.get(time, 1) end, fn ms -> :atomics.add(time, 1, ms) end}
  end

  defp start!(opts) do
    {now, advance} = clock()
    cb = start_supervised!({CircuitBreaker, Keyword.put(opts, :clock, now)})
    {cb, advance}
  end

  # A failing call; the breaker records it (a cast) before this returns, so that the clock
  # moves after the failure, not before.
  defp fail(cb) do
    result = CircuitBreaker.call(cb, fn -> {:error, :boom} end)
    _ = CircuitBreaker.stats(cb)
    result
  end

  test "opens after failure_threshold failures and then refuses without running the function" do
    {cb, _advance} = start!(failure_threshold: 3)
    assert CircuitBreaker.state(cb) == :closed
    assert {:ok, 1} = CircuitBreaker.call(cb, fn -> {:ok, 1} end)
    assert :plain = CircuitBreaker.call(cb, fn -> :plain end)

    for _ <- 1..3, do: assert({:error, :boom} = fail(cb))
    assert CircuitBreaker.state(cb) == :open
    refute CircuitBreaker.allow_call?(cb)
    assert {:error, :circuit_open} = CircuitBreaker.call(cb, fn -> flunk("must not run") end)

    assert CircuitBreaker.stats(cb) == %{
             state: :open,
             failure_count: 3,
             success_count: 2,
             failure_threshold: 3,
             half_open_calls: 0
           }
  end

  test "successes do not reset the failure count while closed (as upstream)" do
    {cb, _advance} = start!(failure_threshold: 2)
    fail(cb)
    CircuitBreaker.call(cb, fn -> {:ok, :fine} end)
    fail(cb)
    assert CircuitBreaker.state(cb) == :open
  end

  test "half-open after reset_timeout_ms: probes are limited; a success closes it" do
    {cb, advance} = start!(failure_threshold: 1, reset_timeout_ms: 1_000, half_open_max_calls: 1)
    fail(cb)
    advance.(999)
    assert CircuitBreaker.state(cb) == :open
    advance.(1)
    assert CircuitBreaker.state(cb) == :half_open
    assert CircuitBreaker.allow_call?(cb)

    parent = self()

    probe =
      Task.async(fn ->
        CircuitBreaker.call(cb, fn ->
          send(parent, :probing)
          receive do: (:finish -> {:ok, :probed})
        end)
      end)

    assert_receive :probing
    # The only probe is running: other calls are refused meanwhile.
    assert {:error, :circuit_open} = CircuitBreaker.call(cb, fn -> flunk("must not run") end)
    send(probe.pid, :finish)
    assert {:ok, :probed} = Task.await(probe)
    assert %{state: :closed, failure_count: 0} = CircuitBreaker.stats(cb)
  end

  test "a failed probe opens it again" do
    {cb, advance} = start!(failure_threshold: 1, reset_timeout_ms: 10)
    fail(cb)
    advance.(10)
    assert {:error, :boom} = fail(cb)
    assert CircuitBreaker.state(cb) == :open
    advance.(10)
    assert CircuitBreaker.state(cb) == :half_open
  end

  test "a raise, throw or exit is a failure and reaches the caller" do
    {cb, _advance} = start!(failure_threshold: 3)
    assert_raise RuntimeError, fn -> CircuitBreaker.call(cb, fn -> raise "x" end) end
    assert catch_throw(CircuitBreaker.call(cb, fn -> throw(:t) end)) == :t
    assert catch_exit(CircuitBreaker.call(cb, fn -> exit(:e) end)) == :e
    assert CircuitBreaker.state(cb) == :open
  end

  test "record_failure/record_success for callers that run the work themselves; reset/1" do
    {cb, _advance} = start!(failure_threshold: 2)
    CircuitBreaker.record_failure(cb)
    CircuitBreaker.record_success(cb)
    CircuitBreaker.record_failure(cb)
    assert CircuitBreaker.state(cb) == :open
    CircuitBreaker.reset(cb)
    assert %{state: :closed, failure_count: 0, success_count: 1} = CircuitBreaker.stats(cb)
  end

  test "upstream's defaults and an optional name" do
    {:ok, cb} = CircuitBreaker.start_link(name: :circuit_breaker_test_named)
    assert Process.whereis(:circuit_breaker_test_named) == cb
    assert %{failure_threshold: 5} = CircuitBreaker.stats(cb)
    GenServer.stop(cb)
  end
end
