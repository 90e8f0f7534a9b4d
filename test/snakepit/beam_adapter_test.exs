defmodule Snakepit.BeamAdapterTest do
  # An adapter implementing the design documents' `execute/3` is served by the pool like OS
  # workers (queue, timeouts, crash and replacement, recycling, stats), its work done in BEAM
  # processes (`Snakepit.BeamWorker`), with no OS process.
  use ExUnit.Case, async: true

  alias Snakepit.{Call, Error, TestPool}

  defmodule SpecMockAdapter do
    # The Snakepit Core specification's "Mock Adapter for Testing", as users write it.
    @behaviour Snakepit.Adapter

    def execute("ping", _args, _opts), do: {:ok, %{status: "pong"}}
    def execute("error", _args, _opts), do: {:error, "simulated error"}

    def execute("slow", _args, opts) do
      timeout = Keyword.get(opts, :delay, 1000)
      Process.sleep(timeout)
      {:ok, %{delay: timeout}}
    end

    def uses_grpc?, do: false
    def supports_streaming?, do: false
    def init(_config), do: {:ok, %{}}
    def terminate(_reason, _state), do: :ok
  end

  defmodule ScriptedAdapter do
    # Tells the test (the pool's event listener) what its workers do; `block` holds a worker
    # until the test sends it `:release`.
    @behaviour Snakepit.Adapter

    @impl true
    def init(opts) do
      test = opts[:event_listener]
      Process.put(:test, test)
      send(test, {:worker_init, self()})
      {:ok, %{test: test}}
    end

    @impl true
    def execute("echo", args, opts), do: {:ok, %{args: args, opts: opts, pid: self()}}

    def execute("block", _args, _opts) do
      send(Process.get(:test), {:blocked, self()})

      receive do
        :release -> {:ok, :released}
      end
    end

    def execute("raise", _args, _opts), do: raise(ArgumentError, "bad input")
    def execute("exit", _args, _opts), do: exit(:boom)

    @impl true
    def terminate(reason, state), do: send(state.test, {:worker_terminate, self(), reason})
  end

  defmodule FailingInitAdapter do
    @behaviour Snakepit.Adapter

    @impl true
    def init(_opts), do: {:error, :no_model}

    @impl true
    def execute(_command, _args, _opts), do: {:ok, nil}
  end

  defp start_pool(adapter, opts \\ []),
    do: TestPool.start!(Keyword.merge([adapter_module: adapter, size: 1], opts))

  defp worker_pid(pool) do
    [%{pid: pid}] = Snakepit.list_workers(pool)
    pid
  end

  defp assert_outcomes_add_up(pool) do
    stats = Snakepit.get_stats(pool)

    assert stats.requests ==
             stats.completed + stats.errors + stats.callers_gone + stats.in_flight + stats.queued

    stats
  end

  test "the specification's mock adapter is served, with no OS process" do
    pool = start_pool(SpecMockAdapter, size: 2)

    assert {:ok, %{status: "pong"}} = Snakepit.execute("ping", %{}, pool: pool)

    assert {:error, %Error{reason: :worker_error, message: message}} =
             Snakepit.execute("error", %{}, pool: pool)

    assert message =~ "simulated error"

    assert {:error, %Error{reason: :timeout}} =
             Snakepit.execute("slow", %{}, pool: pool, timeout: 100)

    workers = Snakepit.list_workers(pool)
    assert length(workers) == 2
    assert Enum.all?(workers, &(is_nil(&1.os_pid) and Process.alive?(&1.pid)))
    assert Snakepit.Pool.os_pids(pool) == []
  end

  test "args arrive JSON-decoded, as a Python worker gets them; results come back as they are" do
    pool = start_pool(ScriptedAdapter)
    [%{id: worker_id}] = Snakepit.list_workers(pool)

    assert {:ok, %{args: args, opts: opts, pid: pid}} =
             Snakepit.execute("echo", %{a: 1, nested: %{b: [1, "x", nil]}},
               pool: pool,
               session_id: "s1"
             )

    assert args == %{"a" => 1, "nested" => %{"b" => [1, "x", nil]}}
    assert opts == [worker_id: worker_id, session_id: "s1"]
    assert pid == worker_pid(pool)

    assert {:error, %Error{reason: :invalid_args}} =
             Snakepit.execute("echo", %{pid: self()}, pool: pool)
  end

  test "a raise is :worker_error, and the worker keeps serving" do
    pool = start_pool(ScriptedAdapter)
    pid = worker_pid(pool)

    assert {:error, %Error{reason: :worker_error, details: details}} =
             Snakepit.execute("raise", %{}, pool: pool)

    assert details.type == "ArgumentError"
    assert details.message == "bad input"
    assert details.traceback =~ "ScriptedAdapter.execute/3"
    assert {:ok, %{pid: ^pid}} = Snakepit.execute("echo", %{}, pool: pool)
  end

  test "a command execute/3 has no clause for is :unknown_command" do
    pool = start_pool(ScriptedAdapter)

    assert {:error, %Error{reason: :unknown_command, message: message}} =
             Snakepit.execute("nope", %{}, pool: pool)

    assert message =~ "nope"
  end

  test "a worker that exits fails its request with :worker_crashed and is replaced" do
    pool = start_pool(ScriptedAdapter)
    assert_receive {:worker_init, old}

    assert {:error, %Error{reason: :worker_crashed, message: message}} =
             Snakepit.execute("exit", %{}, pool: pool)

    assert message =~ "boom"
    assert_receive {:snakepit_pool_event, ^pool, {:worker_exit, _id, nil, exit}}
    assert exit =~ "boom"
    assert_receive {:worker_init, new}
    assert_receive {:snakepit_pool_event, ^pool, {:worker_ready, _id, nil}}
    assert {:ok, %{pid: ^new}} = Snakepit.execute("echo", %{}, pool: pool)
    refute new == old

    stats = assert_outcomes_add_up(pool)
    assert %{worker_crashes: 1, requests_lost: 1, completed: 1} = stats
  end

  test "requests wait in the queue for a busy worker" do
    pool = start_pool(ScriptedAdapter)
    blocked = Task.async(fn -> Snakepit.execute("block", %{}, pool: pool) end)
    assert_receive {:blocked, worker}

    {:ok, pending} = Call.submit(pool, "echo", %{n: 1})
    assert %{queued: 1, busy: 1} = Snakepit.get_stats(pool)

    send(worker, :release)
    assert {:ok, :released} = Task.await(blocked)
    assert {:ok, %{args: %{"n" => 1}, pid: ^worker}} = Call.await(pending)
    assert %{completed: 2, queued: 0} = assert_outcomes_add_up(pool)
  end

  test "a request that waits past :queue_timeout fails and never runs" do
    pool = start_pool(ScriptedAdapter, queue_timeout: 50)
    blocked = Task.async(fn -> Snakepit.execute("block", %{}, pool: pool) end)
    assert_receive {:blocked, worker}

    assert {:error, %Error{reason: :queue_timeout}} = Snakepit.execute("echo", %{}, pool: pool)

    send(worker, :release)
    assert {:ok, :released} = Task.await(blocked)
    assert %{queue_timeouts: 1, completed: 1} = assert_outcomes_add_up(pool)
  end

  test "past its :timeout a request fails at once; a worker still busy after the cancel grace is killed and replaced" do
    pool = start_pool(ScriptedAdapter, cancel_grace: 50)
    assert_receive {:worker_init, _}

    assert {:error, %Error{reason: :timeout}} =
             Snakepit.execute("block", %{}, pool: pool, timeout: 50)

    assert_receive {:blocked, worker}
    ref = Process.monitor(worker)
    # On a loaded machine the kill may come before the monitor (`:noproc`); the pool's event
    # says how it exited either way.
    assert_receive {:DOWN, ^ref, :process, ^worker, reason} when reason in [:killed, :noproc]
    assert_receive {:snakepit_pool_event, ^pool, {:worker_exit, _id, nil, "exit: killed"}}
    assert_receive {:worker_init, replacement}
    assert_receive {:snakepit_pool_event, ^pool, {:worker_ready, _id, nil}}
    assert {:ok, %{pid: ^replacement}} = Snakepit.execute("echo", %{}, pool: pool)
    assert %{timeouts: 1, workers_killed: 1, completed: 1} = assert_outcomes_add_up(pool)
  end

  test "a worker that answers within the cancel grace is kept" do
    pool = start_pool(ScriptedAdapter, cancel_grace: 60_000)

    assert {:error, %Error{reason: :timeout}} =
             Snakepit.execute("block", %{}, pool: pool, timeout: 50)

    assert_receive {:blocked, worker}
    send(worker, :release)
    # The late answer is discarded; the same worker takes the next request.
    assert {:ok, %{pid: ^worker}} = Snakepit.execute("echo", %{}, pool: pool)
    assert %{timeouts: 1, workers_killed: 0, completed: 1} = assert_outcomes_add_up(pool)
  end

  test "health checks are answered by the worker process, never by the adapter; one unanswered gets its worker replaced" do
    # ScriptedAdapter has no "ping": a health check reaching it would fail and kill the worker.
    pool =
      start_pool(ScriptedAdapter,
        size: 2,
        health_check_interval: 20,
        health_check_timeout: 50,
        cancel_grace: 50
      )

    assert_receive {:worker_init, _}
    assert_receive {:worker_init, _}
    [stuck, _healthy] = Enum.map(Snakepit.list_workers(pool), & &1.pid)
    ref = Process.monitor(stuck)
    :erlang.suspend_process(stuck)

    assert_receive {:DOWN, ^ref, :process, ^stuck, :killed}, 5_000
    assert_receive {:worker_init, _replacement}
    assert %{workers_killed: 1, health_checks: checks} = Snakepit.get_stats(pool)
    assert checks > 1
  end

  test "init/1 runs in each worker and terminate/2 when the pool stops" do
    pool = start_pool(ScriptedAdapter, size: 2)
    assert_receive {:worker_init, first}
    assert_receive {:worker_init, second}

    assert Enum.sort([first, second]) ==
             Enum.sort(Enum.map(Snakepit.list_workers(pool), & &1.pid))

    stop_supervised!(pool)
    assert_receive {:worker_terminate, ^first, :shutdown}
    assert_receive {:worker_terminate, ^second, :shutdown}
    refute Process.alive?(first) or Process.alive?(second)
  end

  test "a failing init/1 is a failed start, retried with back-off" do
    opts = TestPool.options(adapter_module: FailingInitAdapter, size: 1)
    start_supervised!({Snakepit.Pool, opts})
    pool = opts[:name]

    assert_receive {:snakepit_pool_event, ^pool, {:start_failed, message}}
    assert message =~ ":no_model"
    assert {:error, %Error{reason: :pool_not_initialized}} = Snakepit.Pool.await_ready(pool)
  end

  test "workers are recycled after :worker_max_requests, the replacement first" do
    pool = start_pool(ScriptedAdapter, worker_max_requests: 2)
    assert_receive {:worker_init, old}

    assert {:ok, %{pid: ^old}} = Snakepit.execute("echo", %{}, pool: pool)
    assert {:ok, %{pid: ^old}} = Snakepit.execute("echo", %{}, pool: pool)

    assert_receive {:worker_init, new}
    assert_receive {:worker_terminate, ^old, :shutdown}
    assert_receive {:snakepit_pool_event, ^pool, {:worker_retired, _id, nil}}
    assert {:ok, %{pid: ^new}} = Snakepit.execute("echo", %{}, pool: pool)
    assert %{worker_recycles: 1} = Snakepit.get_stats(pool)
  end
end
