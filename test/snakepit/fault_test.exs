defmodule Snakepit.FaultTest do
  # Real faults on real processes: signals, hangs, garbage on the protocol fd, dead callers.
  # Workers are `snakepit_test_worker`, told per request how to misbehave.
  use ExUnit.Case, async: true

  import Snakepit.TestPool
  alias Snakepit.{Call, Error, TestBlocker}

  @moduletag :fault
  @moduletag :tmp_dir

  describe "a crashed worker" do
    test "kill -9 mid-request fails that request with :worker_crashed and is replaced", %{
      tmp_dir: dir
    } do
      pool = start_test_workers!(size: 1)
      victim = only_worker_pid(pool)
      blocker = TestBlocker.new!(dir)
      {:ok, pending} = Call.submit(pool, "block", TestBlocker.args(blocker))
      TestBlocker.assert_blocked(blocker)

      os_kill(victim, "KILL")

      assert {:error, %Error{reason: :worker_crashed, category: :worker}} = Call.await(pending)
      refute os_process_alive?(victim)
      assert_receive {:snakepit_pool_event, ^pool, {:worker_exit, _, ^victim, _}}, 10_000

      assert_receive {:snakepit_pool_event, ^pool, {:worker_ready, _, replacement}}
                     when replacement != victim,
                     10_000

      assert {:ok, %{"pid" => ^replacement}} = Snakepit.execute("ping", %{}, pool: pool)
      assert %{worker_crashes: 1, workers: 1} = Snakepit.get_stats(pool)
    end

    for signal <- ["SEGV", "TERM", "ABRT"] do
      test "death by SIG#{signal} is :worker_crashed" do
        pool = start_test_workers!(size: 1)

        assert {:error, %Error{reason: :worker_crashed}} =
                 Snakepit.execute("crash", %{signal: unquote(signal)}, pool: pool)

        assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
      end
    end

    test "an exit with a status is :worker_crashed" do
      pool = start_test_workers!(size: 1)

      assert {:error, %Error{reason: :worker_crashed}} =
               Snakepit.execute("crash", %{status: 7}, pool: pool)

      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
    end
  end

  describe "a hung worker" do
    test "SIGSTOP: the caller gets :timeout, the worker is killed after the cancel grace and replaced",
         %{tmp_dir: dir} do
      pool = start_test_workers!(size: 2, cancel_grace: 200)
      [one, two] = Snakepit.Pool.os_pids(pool)
      blocker = TestBlocker.new!(dir)
      {:ok, pending} = Call.submit(pool, "block", TestBlocker.args(blocker), timeout: 100)
      TestBlocker.assert_blocked(blocker)
      [stopped] = for %{status: :busy, os_pid: pid} <- Snakepit.list_workers(pool), do: pid
      os_kill(stopped, "STOP")

      assert {:error, %Error{reason: :timeout}} = Call.await(pending)

      # Until it is replaced, the stopped worker gets no work.
      for _ <- 1..10 do
        assert {:ok, %{"pid" => pid}} = Snakepit.execute("ping", %{}, pool: pool)
        assert pid != stopped
      end

      assert_receive {:snakepit_pool_event, ^pool, {:worker_exit, _, ^stopped, _}}, 10_000
      refute os_process_alive?(stopped)

      assert_receive {:snakepit_pool_event, ^pool, {:worker_ready, _, replacement}}
                     when replacement != one and replacement != two,
                     10_000

      assert %{workers_killed: 1, timeouts: 1, workers: 2, available: 2} =
               Snakepit.get_stats(pool)
    end

    test "a worker that answers within the grace period after its timeout is kept", %{
      tmp_dir: dir
    } do
      pool = start_test_workers!(size: 1, cancel_grace: 60_000)
      patient = only_worker_pid(pool)
      blocker = TestBlocker.new!(dir)

      assert {:error, %Error{reason: :timeout}} =
               Snakepit.execute("block", TestBlocker.args(blocker), pool: pool, timeout: 100)

      TestBlocker.release(blocker)
      # Waits until the worker has answered (its reply is discarded), then runs on it.
      assert {:ok, %{"pid" => ^patient}} = Snakepit.execute("ping", %{}, pool: pool)
      assert %{workers_killed: 0, timeouts: 1} = Snakepit.get_stats(pool)
      # The cancel frame was written before the caller got `:timeout`, so it is on the pipe
      # ahead of the ping: the worker has seen it.
      assert {:ok, [_request_id]} = Snakepit.execute("cancels", %{}, pool: pool)
    end

    test "a worker that never answers after its timeout is killed after the grace period" do
      pool = start_test_workers!(size: 1, cancel_grace: 100)
      hung = only_worker_pid(pool)

      assert {:error, %Error{reason: :timeout}} =
               Snakepit.execute("hang", %{}, pool: pool, timeout: 100)

      assert_receive {:snakepit_pool_event, ^pool, {:worker_exit, _, ^hung, _}}, 10_000
      refute os_process_alive?(hung)
      assert {:ok, %{"pid" => replacement}} = Snakepit.execute("ping", %{}, pool: pool)
      assert replacement != hung
      assert %{workers_killed: 1} = Snakepit.get_stats(pool)
    end

    test "a worker that stops reading mid-frame: nothing waits on it, the pool recovers" do
      pool = start_test_workers!(size: 1, cancel_grace: 100, max_frame_size: 4_000_000)
      frozen = only_worker_pid(pool)
      os_kill(frozen, "STOP")
      # Far larger than a pipe's buffer: the write is finished in the background, the cancel
      # frame queues behind it, and the worker is killed after the grace period.
      big = String.duplicate("x", 1_000_000)

      assert {:error, %Error{reason: :timeout}} =
               Snakepit.execute("echo", %{data: big}, pool: pool, timeout: 200)

      assert_receive {:snakepit_pool_event, ^pool, {:worker_exit, _, ^frozen, _}}, 10_000
      assert {:ok, %{"data" => ^big}} = Snakepit.execute("echo", %{data: big}, pool: pool)
    end

    test "stopping a pool whose worker stopped reading mid-frame does not hang" do
      {pid, name} = start_owned_test_workers!(size: 1, shutdown_grace: 200)
      [frozen] = Snakepit.Pool.os_pids(name)
      os_kill(frozen, "STOP")
      # Accepted when `submit` returns: the only worker holds it.
      {:ok, pending} = Call.submit(name, "echo", %{data: String.duplicate("y", 500_000)})

      :ok = GenServer.stop(pid)
      assert {:error, %Error{reason: :pool_shutdown}} = Call.await(pending)
      refute os_process_alive?(frozen)
    end

    test "the pool enforces timeouts even when the caller is gone" do
      pool = start_test_workers!(size: 1, cancel_grace: 100)
      hung = only_worker_pid(pool)

      # The caller submits and exits at once: only the pool can time the request out.
      {_caller, ref} =
        spawn_monitor(fn -> {:ok, _} = Call.submit(pool, "hang", %{}, timeout: 100) end)

      assert_receive {:DOWN, ^ref, :process, _, :normal}

      assert_receive {:snakepit_pool_event, ^pool, {:worker_exit, _, ^hung, _}}, 10_000
      assert {:ok, %{"pid" => replacement}} = Snakepit.execute("ping", %{}, pool: pool)
      assert replacement != hung
    end

    test "idle workers are health-checked; one that stops answering is replaced" do
      pool =
        start_test_workers!(
          size: 1,
          health_check_interval: 100,
          health_check_timeout: 100,
          cancel_grace: 100
        )

      frozen = only_worker_pid(pool)
      os_kill(frozen, "STOP")

      assert_receive {:snakepit_pool_event, ^pool, {:worker_exit, _, ^frozen, _}}, 10_000

      assert_receive {:snakepit_pool_event, ^pool, {:worker_ready, _, replacement}}
                     when replacement != frozen,
                     10_000

      assert only_worker_pid(pool) == replacement
      assert Snakepit.get_stats(pool).health_checks >= 1
    end
  end

  describe "frames larger than a pipe's buffer" do
    test "back to back, then small ones, then a prompt stop" do
      {pid, name} = start_owned_test_workers!(size: 1)
      big = String.duplicate("z", 300_000)

      # Regression: the writer that finishes a large frame in the background deadlocked on its
      # own lock when done, so the next frame (or stop) to that worker waited forever.
      for _ <- 1..5 do
        assert {:ok, %{"data" => ^big}} = Snakepit.execute("echo", %{data: big}, pool: name)
      end

      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: name)
      stopper = Task.async(fn -> GenServer.stop(pid) end)
      assert :ok = Task.await(stopper, 5_000)
    end
  end

  describe "a worker that breaks the protocol" do
    for {command, args} <- [
          {"garbage", %{}},
          {"garbage_raw", %{}},
          {"oversized", %{bytes: 5_000}},
          {"wrong_id", %{}}
        ] do
      test "#{command}: its caller gets :protocol_error and the worker is replaced" do
        pool = start_test_workers!(size: 1, max_frame_size: 4_096)
        liar = only_worker_pid(pool)

        assert {:error, %Error{reason: :protocol_error, message: message}} =
                 Snakepit.execute(unquote(command), unquote(Macro.escape(args)), pool: pool)

        assert message =~ "broke the protocol"
        await_gone([liar])
        assert {:ok, %{"pid" => pid}} = Snakepit.execute("ping", %{}, pool: pool)
        assert pid != liar
      end
    end

    test "args beyond max_frame_size are refused before reaching a worker" do
      pool = start_test_workers!(size: 1, max_frame_size: 1_000)

      assert {:error, %Error{reason: :args_too_large}} =
               Snakepit.execute("echo", %{data: String.duplicate("x", 2_000)}, pool: pool)

      assert {:ok, _} = Snakepit.execute("echo", %{data: "small"}, pool: pool)
    end
  end

  describe "callers" do
    test "a caller that dies while queued is dropped: its request never runs", %{tmp_dir: dir} do
      pool = start_test_workers!(size: 1)
      worker = only_worker_pid(pool)
      blocker = TestBlocker.new!(dir)
      {:ok, running} = Call.submit(pool, "block", TestBlocker.args(blocker))
      TestBlocker.assert_blocked(blocker)
      test = self()

      {doomed, ref} =
        spawn_monitor(fn ->
          {:ok, _} = Call.submit(pool, "crash", %{status: 9})
          send(test, :queued)
          receive(do: (:never -> :ok))
        end)

      assert_receive :queued
      Process.exit(doomed, :kill)
      assert_receive {:DOWN, ^ref, :process, _, :killed}
      # The pool learns of the death asynchronously and no event says it has; its counter is
      # the only sign. Freeing the worker before then could legitimately run the request.
      assert_receive {:snakepit_pool_event, ^pool, {:caller_gone, _}}, 10_000

      TestBlocker.release(blocker)
      assert {:ok, _} = Call.await(running)
      # Had the dropped request run, the worker would have exited with status 9.
      assert {:ok, %{"pid" => ^worker}} = Snakepit.execute("ping", %{}, pool: pool)
      assert %{callers_gone: 1, worker_crashes: 0, queued: 0} = Snakepit.get_stats(pool)
    end

    test "a caller that dies while its request runs: the result is discarded, the worker reused",
         %{tmp_dir: dir} do
      pool = start_test_workers!(size: 1)
      worker = only_worker_pid(pool)
      blocker = TestBlocker.new!(dir)

      {doomed, ref} =
        spawn_monitor(fn ->
          {:ok, _} = Call.submit(pool, "block", TestBlocker.args(blocker))
          receive(do: (:never -> :ok))
        end)

      TestBlocker.assert_blocked(blocker)
      Process.exit(doomed, :kill)
      assert_receive {:DOWN, ^ref, :process, _, :killed}
      TestBlocker.release(blocker)

      assert {:ok, %{"pid" => ^worker}} = Snakepit.execute("ping", %{}, pool: pool)
      assert %{worker_crashes: 0, completed: 2} = Snakepit.get_stats(pool)
    end
  end

  describe "start failures" do
    test "a pool whose workers cannot start reports it" do
      Process.flag(:trap_exit, true)

      for flag <- ["--fail-start", "--fatal-start", "--bad-handshake"] do
        name = :"failing_#{System.unique_integer([:positive])}"

        start_supervised!(
          {Snakepit.Pool,
           name: name, size: 2, adapter_module: Snakepit.Adapters.TestWorker, adapter_args: [flag]},
          id: name
        )

        assert {:error, %Error{reason: :pool_not_initialized}} = Snakepit.Pool.await_ready(name)
      end
    end

    test "a worker that does not finish its handshake in time is killed", %{tmp_dir: dir} do
      name = :"hanging_#{System.unique_integer([:positive])}"
      pids = Path.join(dir, "pids")
      worker = Snakepit.Adapters.TestWorker.executable_path([])

      start_supervised!(
        {Snakepit.Pool,
         name: name,
         size: 1,
         startup_timeout: 200,
         adapter_module: Snakepit.ShellAdapter,
         adapter_args: [~s(echo $$ >> "#{pids}"; exec "#{worker}" --hang-start)],
         event_listener: self()},
        id: name
      )

      assert_receive {:snakepit_pool_event, ^name, {:worker_start_failed, message}}, 10_000
      assert message =~ "handshake"
      assert {:error, %Error{message: message}} = Snakepit.Pool.await_ready(name)
      assert message =~ "handshake"
      # The pool keeps retrying; the first attempt's process is gone.
      [first | _] = pids |> File.read!() |> String.split() |> Enum.map(&String.to_integer/1)
      await_gone([first])
    end

    test "repeated start failures open the circuit; a successful start closes it", %{tmp_dir: dir} do
      marker = Path.join(dir, "fail")

      pool =
        start_test_workers!(
          size: 1,
          max_start_failures: 2,
          adapter_args: [fail_while(marker)],
          adapter_module: Snakepit.ShellAdapter
        )

      first = only_worker_pid(pool)

      File.write!(marker, "")

      assert {:error, %Error{reason: :worker_crashed}} =
               Snakepit.execute("crash", %{}, pool: pool)

      assert_receive {:snakepit_pool_event, ^pool, {:circuit_open, 2}}, 10_000
      assert Snakepit.get_stats(pool).circuit_open

      assert {:error, %Error{reason: :circuit_open, category: :pool}} =
               Snakepit.execute("ping", %{}, pool: pool)

      File.rm!(marker)
      assert_receive {:snakepit_pool_event, ^pool, :circuit_closed}, 10_000

      assert_receive {:snakepit_pool_event, ^pool, {:worker_ready, _, replacement}}
                     when replacement != first,
                     10_000

      refute Snakepit.get_stats(pool).circuit_open
      assert {:ok, %{"pid" => ^replacement}} = Snakepit.execute("ping", %{}, pool: pool)
    end

    test "a start failure that goes away: the pool keeps retrying, then becomes ready and serves",
         %{tmp_dir: dir} do
      marker = Path.join(dir, "fail")
      File.write!(marker, "")
      name = :"recovering_#{System.unique_integer([:positive])}"

      start_supervised!(
        {Snakepit.Pool,
         name: name,
         size: 1,
         max_start_failures: 1_000,
         queue_timeout: 60_000,
         adapter_module: Snakepit.ShellAdapter,
         adapter_args: [fail_while(marker)],
         event_listener: self()},
        id: name
      )

      assert_receive {:snakepit_pool_event, ^name, {:start_failed, _}}, 10_000

      assert {:error, %Error{reason: :pool_not_initialized}} = Snakepit.Pool.await_ready(name)

      # No worker runs and the circuit is closed: a request is accepted and waits for one.
      assert {:ok, waiting} = Call.submit(name, "ping", %{})

      File.rm!(marker)
      assert_receive {:snakepit_pool_event, ^name, {:worker_ready, _, os_pid}}, 10_000
      assert :ok = Snakepit.Pool.await_ready(name)
      assert {:ok, %{"pid" => ^os_pid}} = Call.await(waiting)
      assert {:ok, %{"pid" => ^os_pid}} = Snakepit.execute("ping", %{}, pool: name)
    end
  end

  describe "recycling" do
    test "worker_max_requests: the replacement is ready before the old worker goes; nothing fails" do
      pool = start_test_workers!(size: 1, worker_max_requests: 5)
      first = only_worker_pid(pool)

      results = for i <- 1..30, do: Snakepit.execute("echo", %{i: i}, pool: pool)
      assert Enum.all?(results, &match?({:ok, _}, &1))

      assert_receive {:snakepit_pool_event, ^pool, {:worker_retired, _, ^first}}, 10_000
      refute os_process_alive?(first)
      stats = Snakepit.get_stats(pool)
      # Requests keep flowing to the old worker while its replacement starts, so fewer recycles
      # than 30 / 5 happen — none of them costs a request.
      assert stats.worker_recycles >= 1
      assert stats.errors == 0 and stats.worker_crashes == 0
    end

    test "worker_ttl retires a worker that is never idle, without failing a request" do
      pool = start_test_workers!(size: 1, worker_ttl: 150)
      first = only_worker_pid(pool)
      caller = Task.async(fn -> call_until_stopped(pool, []) end)

      assert_receive {:snakepit_pool_event, ^pool, {:worker_retired, _, ^first}}, 10_000
      send(caller.pid, :stop)
      results = Task.await(caller)

      assert results != [] and Enum.all?(results, &match?({:ok, _}, &1))
      assert %{errors: 0, worker_crashes: 0} = Snakepit.get_stats(pool)
    end

    test "worker_ttl retires idle workers" do
      pool = start_test_workers!(size: 2, worker_ttl: 200)

      for old <- Snakepit.Pool.os_pids(pool) do
        assert_receive {:snakepit_pool_event, ^pool, {:worker_retired, _, ^old}}, 10_000
      end

      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
    end
  end

  describe "stopping" do
    test "never hangs: a worker that ignores SIGTERM and hangs is killed after the grace period" do
      {pid, name} =
        start_owned_test_workers!(shutdown_grace: 300, adapter_args: ["--ignore-sigterm"])

      os_pids = Snakepit.Pool.os_pids(name)
      {:ok, pending} = Call.submit(name, "hang", %{})

      :ok = GenServer.stop(pid)
      assert {:error, %Error{reason: :pool_shutdown}} = Call.await(pending)
      refute Enum.any?(os_pids, &os_process_alive?/1)
    end

    test "a pool process killed outright still takes its workers with it" do
      {pid, name} = start_owned_test_workers!()
      Process.unlink(pid)
      os_pids = Snakepit.Pool.os_pids(name)

      # No terminate/2 runs: the native pool notices its owner's death through a monitor.
      Process.exit(pid, :kill)
      await_gone(os_pids)

      assert {:error, %Error{reason: :pool_shutdown}} = Snakepit.execute("ping", %{}, pool: name)
    end

    test "stops what workers started, with their process group" do
      {pid, name} = start_owned_test_workers!(size: 1)

      {:ok, %{"child_pid" => child}} = Snakepit.execute("spawn_child", %{sleep_s: 60}, pool: name)

      assert os_process_alive?(child)

      :ok = GenServer.stop(pid)
      await_gone([child])
    end
  end

  # A start script that fails (exit 3) while `marker` exists and runs the test worker otherwise.
  defp fail_while(marker) do
    worker = Snakepit.Adapters.TestWorker.executable_path([])
    ~s(if [ -e "#{marker}" ]; then exit 3; fi; exec "#{worker}")
  end

  defp call_until_stopped(pool, results) do
    receive do
      :stop -> results
    after
      0 -> call_until_stopped(pool, [Snakepit.execute("sleep", %{ms: 5}, pool: pool) | results])
    end
  end
end
