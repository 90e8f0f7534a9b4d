defmodule Snakepit.TelemetryTest do
  # Events are asserted through a handler that sends them to the test process. `:telemetry`
  # cannot be installed here: `test/support/telemetry_stub.ex` stands in for it (a test double
  # with the real package's attach/execute semantics). Other tests' pools emit too, so every
  # assertion names this test's pool.
  use ExUnit.Case, async: true

  import Snakepit.TestPool
  alias Snakepit.{Call, Error, TestBlocker, Telemetry}
  alias Snakepit.Bridge.SessionStore

  @moduletag :tmp_dir

  setup do
    test = self()
    id = {__MODULE__, make_ref()}

    handler = fn event, measurements, metadata, _ ->
      send(test, {:telemetry, event, measurements, metadata})
    end

    :ok = :telemetry.attach_many(id, Telemetry.events(), handler, nil)
    on_exit(fn -> :telemetry.detach(id) end)
  end

  test "it finds :telemetry loaded and lists every event it documents" do
    assert Telemetry.enabled?()
    assert Telemetry.refresh()
    events = Telemetry.events()
    assert [:snakepit, :request, :stop] in events
    assert [:snakepit, :request, :executed] in events
    assert length(Enum.uniq(events)) == length(events)
    {:docs_v1, _, _, _, %{"en" => moduledoc}, _, _} = Code.fetch_docs(Telemetry)
    for event <- events, do: assert(moduledoc =~ inspect(event), "#{inspect(event)} undocumented")
  end

  describe "requests" do
    test "start and stop carry the native pool's timings, which get_stats agrees with" do
      pool = start_test_workers!(size: 1)
      assert {:ok, _} = Snakepit.execute("echo", %{a: 1}, pool: pool, session_id: "s-1")

      assert_receive {:telemetry, [:snakepit, :request, :start], %{monotonic_time: started},
                      %{pool: ^pool, command: "echo", session_id: "s-1"} = start}

      assert_receive {:telemetry, [:snakepit, :request, :stop], stop,
                      %{pool: ^pool, command: "echo", outcome: :ok, error: nil} = metadata}

      assert metadata.telemetry_span_context == start.telemetry_span_context
      assert "#{metadata.worker_id}" =~ ~r/_worker_\d+$/
      assert %{duration: duration, queue_time: queue_time, run_time: run_time} = stop
      assert is_integer(queue_time) and is_integer(run_time) and queue_time + run_time <= duration
      assert stop.monotonic_time - started == duration

      assert_receive {:telemetry, [:snakepit, :request, :executed], %{duration_us: us},
                      %{pool: ^pool, success: true, command: "echo", worker_id: worker}}

      assert worker == metadata.worker_id
      assert us == System.convert_time_unit(duration, :native, :microsecond)

      # The stats' window holds this one request: its percentiles are its times (within the
      # histogram's bucket: less than 1/16 off, or 1 µs).
      %{run_time_ms: run, queue_time_ms: queue} = Snakepit.get_stats(pool)
      assert run.samples == 1 and queue.samples == 1
      assert_close(run.p50, run_time)
      assert_close(queue.p99, queue_time)
    end

    test "a failed request stops with its reason as outcome", %{tmp_dir: dir} do
      pool = start_test_workers!(size: 1, queue_timeout: 100, max_queue_size: 1)
      assert {:error, %Error{reason: :worker_error}} = Snakepit.execute("fail", %{}, pool: pool)
      assert_stop(pool, "fail", :worker_error)

      # Timed out while running: it ran for its timeout.
      blocker = TestBlocker.new!(dir)

      assert {:error, %Error{reason: :timeout}} =
               Snakepit.execute("block", TestBlocker.args(blocker), pool: pool, timeout: 50)

      %{run_time: ran} = assert_stop(pool, "block", :timeout)
      assert System.convert_time_unit(ran, :native, :millisecond) >= 50
      TestBlocker.release(blocker)

      # One running, one waiting past the queue timeout, one refused: the queue is full.
      running = TestBlocker.new!(dir)
      {:ok, pending} = Call.submit(pool, "block", TestBlocker.args(running))
      TestBlocker.assert_blocked(running)
      {:ok, waiting} = Call.submit(pool, "ping", %{})

      assert {:error, %Error{reason: :pool_saturated}} = Snakepit.execute("ping", %{}, pool: pool)

      assert_receive {:telemetry, [:snakepit, :pool, :saturated], %{max_queue_size: 1},
                      %{pool: ^pool, command: "ping"}}

      assert {:error, %Error{reason: :queue_timeout}} = Call.await(waiting)
      %{run_time: nil, queue_time: waited} = assert_stop(pool, "ping", :queue_timeout)
      assert System.convert_time_unit(waited, :native, :millisecond) >= 100

      assert_receive {:telemetry, [:snakepit, :pool, :queue, :timeout], %{queue_time: ^waited},
                      %{pool: ^pool, command: "ping"}}

      TestBlocker.release(running)
      assert {:ok, _} = Call.await(pending)
      assert_stop(pool, "block", :ok)
      # A refused request is not a request: no start, no stop.
      refute_received {:telemetry, [:snakepit, :request, _], _,
                       %{pool: ^pool, outcome: :pool_saturated}}
    end

    test "a pool of BEAM workers reports its worker too" do
      pool = start_test_workers!(size: 1, adapter_module: Snakepit.BeamPingAdapter)
      assert {:ok, "pong"} = Snakepit.execute("ping", %{}, pool: pool)
      %{run_time: run_time} = assert_stop(pool, "ping", :ok)
      assert is_integer(run_time)
    end
  end

  describe "workers" do
    test "a failed health check: the pool's event and telemetry carry the reason; replaced" do
      # Health-checked with `ping` (no heartbeats), which the worker is then told to fail.
      pool =
        start_test_workers!(size: 1, adapter_args: ["--no-heartbeat"], health_check_interval: 20)

      [%{id: id, os_pid: os_pid}] = Snakepit.list_workers(pool)
      assert {:ok, true} = Snakepit.execute("fail_pings", %{}, pool: pool)

      assert_receive {:snakepit_pool_event, ^pool, {:health_check_failed, ^id, ^os_pid, reason}},
                     10_000

      assert reason =~ "told to fail pings"

      assert_receive {:telemetry, [:snakepit, :worker, :health_check_failed], _,
                      %{pool: ^pool, worker_id: ^id, reason: ^reason}},
                     10_000

      assert_receive {:snakepit_pool_event, ^pool, {:worker_exit, ^id, ^os_pid, _}}, 10_000
      assert_receive {:snakepit_pool_event, ^pool, {:worker_ready, new_id, _}} when new_id != id
    end

    test "spawned, terminated and restarted" do
      name = :"telemetry_pool_#{System.unique_integer([:positive])}"
      pool = start_test_workers!(size: 1, name: name)

      assert_receive {:telemetry, [:snakepit, :pool, :worker, :spawned], %{system_time: _},
                      %{pool: ^pool, worker_id: first, os_pid: os_pid}}

      assert is_integer(os_pid)
      System.cmd("kill", ["-KILL", "#{os_pid}"])

      assert_receive {:telemetry, [:snakepit, :pool, :worker, :terminated], _,
                      %{pool: ^pool, worker_id: ^first, planned: false, reason: reason}},
                     10_000

      assert is_binary(reason)

      assert_receive {:telemetry, [:snakepit, :pool, :worker, :restarted], %{count: 1},
                      %{pool: ^pool, worker_id: ^first}}

      assert_receive {:telemetry, [:snakepit, :pool, :worker, :spawned], _,
                      %{pool: ^pool, worker_id: second}},
                     10_000

      assert second != first
    end

    test "recycled" do
      pool = start_test_workers!(size: 1, worker_max_requests: 1)

      assert_receive {:telemetry, [:snakepit, :pool, :worker, :spawned], _,
                      %{pool: ^pool, worker_id: first}}

      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)

      assert_receive {:telemetry, [:snakepit, :worker, :recycled], %{count: 1},
                      %{pool: ^pool, worker_id: ^first, reason: :recycled}},
                     10_000

      assert_receive {:telemetry, [:snakepit, :pool, :worker, :terminated], _,
                      %{pool: ^pool, worker_id: ^first, planned: true}}
    end
  end

  describe "sessions" do
    test "created and expired" do
      clock = :atomics.new(1, signed: true)
      store = :"telemetry_store_#{System.unique_integer([:positive])}"

      start_supervised!(
        {SessionStore,
         name: store, clock: fn -> :atomics.get(clock, 1) end, cleanup_interval: :infinity}
      )

      id = "telemetry-#{System.unique_integer([:positive])}"
      {:ok, _} = SessionStore.create_session(store, id, ttl: 10)

      assert_receive {:telemetry, [:snakepit, :session_store, :session, :created],
                      %{system_time: _}, %{session_id: ^id}}

      :atomics.add(clock, 1, 11)
      assert SessionStore.cleanup_expired_sessions(store) == 1

      assert_receive {:telemetry, [:snakepit, :session_store, :session, :expired], %{count: 1},
                      %{session_id: ^id}}
    end
  end

  describe "streams" do
    test "start, a credit stall per chunk when the window is one, stop" do
      pool = start_test_workers!(size: 1, stream_window: 1)
      assert [_, _, _ | _] = Enum.to_list(Snakepit.stream("count", %{n: 3}, pool: pool))

      assert_receive {:telemetry, [:snakepit, :stream, :start], _,
                      %{pool: ^pool, command: "count"}}

      # With a window of one, every chunk leaves the worker waiting for this consumer.
      for n <- 1..3 do
        assert_receive {:telemetry, [:snakepit, :stream, :credit_stall], %{chunks: ^n},
                        %{pool: ^pool}}
      end

      assert_receive {:telemetry, [:snakepit, :stream, :stop], %{chunks: chunks, duration: _},
                      %{pool: ^pool, outcome: :done}}

      assert chunks >= 3
    end

    test "a stream stopped early stops as halted" do
      pool = start_test_workers!(size: 1, stream_window: 4)
      assert [_, _] = Enum.take(Snakepit.stream("count", %{n: 1_000}, pool: pool), 2)

      assert_receive {:telemetry, [:snakepit, :stream, :stop], %{chunks: 2},
                      %{pool: ^pool, outcome: :halted}}
    end
  end

  defp assert_stop(pool, command, outcome) do
    assert_receive {:telemetry, [:snakepit, :request, :stop], measurements,
                    %{pool: ^pool, command: ^command, outcome: ^outcome}},
                   10_000

    measurements
  end

  # `ms` (a percentile in ms) reads `native` (a duration) within the histogram's precision.
  defp assert_close(ms, native) do
    us = System.convert_time_unit(native, :native, :microsecond)
    assert abs(ms * 1000 - us) <= max(us / 16, 1), "#{ms} ms for #{us} µs"
  end
end
