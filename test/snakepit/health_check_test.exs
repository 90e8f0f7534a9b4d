defmodule Snakepit.HealthCheckTest do
  # Health checks go through the protocol (docs/protocol.md): a worker whose handshake announces
  # "heartbeat" gets heartbeat frames, answered by the worker itself and never by one of its
  # tools; a worker that does not announce it gets an ordinary `ping` request.
  use ExUnit.Case, async: true

  alias Snakepit.TestPool

  # Waits until `count` health checks of the pool have passed (the pool's events).
  defp await_health_checks(pool, count) do
    for _ <- 1..count, do: assert_receive({:snakepit_pool_event, ^pool, :health_check_passed})
  end

  test "an adapter's own ping (it needs a message) is never called by a health check; the worker stays" do
    pool =
      TestPool.start!(
        size: 1,
        adapter_args: ["--adapter", "own_ping_adapter.OwnPingAdapter"],
        health_check_interval: 20
      )

    os_pid = TestPool.only_worker_pid(pool)

    await_health_checks(pool, 3)

    assert TestPool.only_worker_pid(pool) == os_pid
    refute_received {:snakepit_pool_event, ^pool, {:worker_exit, _, _, _}}
    assert %{worker_crashes: 0, workers_killed: 0} = Snakepit.get_stats(pool)

    # The adapter's ping shadows the built-in one.
    assert {:ok, %{"pong" => "hi", "pid" => ^os_pid}} =
             Snakepit.execute("ping", %{message: "hi"}, pool: pool)
  end

  test "a worker that announces heartbeat gets heartbeat frames, never ping requests" do
    pool = TestPool.start_test_workers!(size: 1, health_check_interval: 20)
    await_health_checks(pool, 2)

    # Queued behind any check in flight: both checks have been answered when it runs.
    assert {:ok, %{"heartbeats" => heartbeats, "pings" => 0}} =
             Snakepit.execute("health_checks", %{}, pool: pool)

    assert heartbeats >= 2
  end

  test "a worker that does not announce heartbeat is health-checked with ping requests" do
    pool =
      TestPool.start_test_workers!(
        size: 1,
        health_check_interval: 20,
        adapter_args: ["--no-heartbeat"]
      )

    await_health_checks(pool, 2)

    assert {:ok, %{"heartbeats" => 0, "pings" => pings}} =
             Snakepit.execute("health_checks", %{}, pool: pool)

    assert pings >= 2
  end
end
