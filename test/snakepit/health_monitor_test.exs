defmodule Snakepit.HealthMonitorTest do
  use ExUnit.Case, async: true

  alias Snakepit.HealthMonitor

  setup do
    time = :atomics.new(1, [])
    name = :"health_monitor_#{System.unique_integer([:positive])}"

    hm =
      start_supervised!(
        {HealthMonitor,
         name: name,
         pool: :ml,
         max_crashes: 3,
         crash_window_ms: 1_000,
         clock: fn -> :atomics.get(time, 1) end}
      )

    %{hm: hm, advance: fn ms -> :atomics.add(time, 1, ms) end}
  end

  test "unhealthy once max_crashes crashes fall in the window", %{hm: hm} do
    assert HealthMonitor.healthy?(hm)
    HealthMonitor.record_crash(hm, "w1", %{reason: :oom})
    HealthMonitor.record_crash(hm, "w2")
    assert HealthMonitor.healthy?(hm)
    HealthMonitor.record_crash(hm, "w1", %{reason: :segfault})
    refute HealthMonitor.healthy?(hm)

    assert HealthMonitor.stats(hm) == %{
             pool: :ml,
             total_crashes: 3,
             crashes_in_window: 3,
             workers_with_crashes: 2,
             max_crashes: 3,
             crash_window_ms: 1_000,
             is_healthy: false
           }
  end

  test "crashes leave the window as time passes; pruning forgets quiet workers", %{
    hm: hm,
    advance: advance
  } do
    HealthMonitor.record_crash(hm, "w1")
    # A call after the cast (a cast is timed when the monitor handles it): then the clock moves.
    assert HealthMonitor.healthy?(hm)
    advance.(600)
    HealthMonitor.record_crash(hm, "w2")
    HealthMonitor.record_crash(hm, "w2")
    refute HealthMonitor.healthy?(hm)

    advance.(401)

    assert %{crashes_in_window: 2, workers_with_crashes: 2, is_healthy: true} =
             HealthMonitor.stats(hm)

    send(hm, :prune)
    assert %{workers_with_crashes: 1, total_crashes: 3} = HealthMonitor.stats(hm)
  end

  test "worker_health/2: unhealthy from 3 crashes of that worker", %{hm: hm} do
    assert %{healthy: true, crash_count: 0, last_crash_time: nil} =
             HealthMonitor.worker_health(hm, "w1")

    for _ <- 1..3, do: HealthMonitor.record_crash(hm, "w1")

    assert %{healthy: false, crash_count: 3, last_crash_time: 0} =
             HealthMonitor.worker_health(hm, "w1")
  end
end
