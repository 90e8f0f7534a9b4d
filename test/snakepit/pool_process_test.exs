defmodule Snakepit.PoolProcessTest do
  # What upstream Snakepit's users (and its tests) do with a pool's process: call it directly,
  # pass its pid as `:pool`, send it what they like; and stub pools of their own given as `:pool`.
  use ExUnit.Case, async: true

  alias Snakepit.{Error, LogForwarder, TestBlocker, TestPool}

  @moduletag :tmp_dir

  # Answers `{:execute, ...}` with a fixed reply, or holds the call (never answers) with
  # `:hold`, telling the test what it was called with.
  defmodule StubPool do
    use GenServer

    def start_link({reply, test}), do: GenServer.start_link(__MODULE__, {reply, test})

    def start_link({reply, test, name}),
      do: GenServer.start_link(__MODULE__, {reply, test}, name: name)

    @impl true
    def init(state), do: {:ok, state}

    @impl true
    def handle_call({:execute, _, _, _} = request, _from, {reply, test} = state) do
      send(test, {:stub_called, request})

      case reply do
        :hold -> {:noreply, state}
        :exit -> {:stop, :boom, state}
        reply -> {:reply, reply, state}
      end
    end
  end

  describe "GenServer.call(pool, {:execute, command, args, opts})" do
    setup do
      %{pool: TestPool.start_test_workers!(size: 1)}
    end

    test "is answered like execute/3", %{pool: pool} do
      assert {:ok, %{"a" => 1}} = GenServer.call(pool, {:execute, "echo", %{a: 1}, []})
      assert {:ok, %{"a" => 1}} = GenServer.call(pool, {:execute, "echo", [a: 1], []})

      assert {:error, %Error{reason: :unknown_command, details: %{command: "nope"}}} =
               GenServer.call(pool, {:execute, "nope", %{}, []})

      assert {:error, %Error{reason: :invalid_option}} =
               GenServer.call(pool, {:execute, "ping", %{}, [tiemout: 1]})

      # v0.13's form naming the pool, and v0.4.3's with the timeout last.
      assert {:ok, %{"status" => "pong"}} =
               GenServer.call(pool, {:execute, pool, "ping", %{}, []})

      assert {:error, %Error{reason: :pool_not_initialized}} =
               GenServer.call(pool, {:execute, :no_such_pool, "ping", %{}, []})

      assert {:ok, %{"status" => "pong"}} =
               GenServer.call(pool, {:execute, "ping", %{}, [], 5_000})

      assert {:error, %Error{reason: :timeout}} =
               GenServer.call(pool, {:execute, "hang", %{}, [], 50})
    end

    test "does not block the pool's process while the request runs", %{pool: pool, tmp_dir: dir} do
      blocker = TestBlocker.new!(dir)

      call =
        Task.async(fn ->
          GenServer.call(pool, {:execute, "block", TestBlocker.args(blocker), []})
        end)

      TestBlocker.assert_blocked(blocker)

      # The only worker is busy with the call, and the pool's process still answers.
      assert :ok = Snakepit.Pool.await_ready(pool, 1_000)
      assert %{busy: 1} = GenServer.call(pool, :get_stats, 1_000)
      assert [%{status: :busy}] = GenServer.call(pool, :list_workers, 1_000)

      TestBlocker.release(blocker, "go")
      assert {:ok, %{"released" => "go" <> _}} = Task.await(call)
    end
  end

  describe "an unexpected message never crashes the pool" do
    setup do
      LogForwarder.forward_to_self()
      pool = TestPool.start_test_workers!(size: 1)
      %{pool: pool, pid: Process.whereis(pool)}
    end

    test "an unknown call is an error reply", %{pool: pool, pid: pid} do
      assert {:error, %Error{reason: :unsupported_call, category: :validation} = error} =
               GenServer.call(pool, {:no_such, :request})

      assert error.message =~ "{:no_such, :request}"
      assert {:error, %Error{reason: :unsupported_call}} = GenServer.call(pool, {:execute, "x"})

      line =
        "pool #{inspect(pool)} got an unexpected call from #{inspect(self())}: {:no_such, :request}"

      assert_receive {:log, :warning, ^line, _}
      assert Process.whereis(pool) == pid
      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
    end

    test "casts and other messages are logged and ignored", %{pool: pool, pid: pid} do
      ref = make_ref()
      GenServer.cast(pool, {:checkin_worker, "w1"})
      send(pid, {:some, :message})
      send(pid, {ref, :late_reply})

      for line <- [
            ~s(ignored an unexpected cast: {:checkin_worker, "w1"}),
            "ignored an unexpected message: {:some, :message}",
            "ignored an unexpected message: {#{inspect(ref)}, :late_reply}"
          ] do
        line = "pool #{inspect(pool)} " <> line
        assert_receive {:log, :warning, ^line, _}
      end

      assert Process.whereis(pool) == pid
      assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
    end
  end

  describe "a pool's pid works where its name does" do
    setup do
      pool = TestPool.start_test_workers!(size: 1)
      %{pool: pool, pid: Process.whereis(pool)}
    end

    test "execute/3 and await_ready/2", %{pid: pid} do
      assert :ok = Snakepit.Pool.await_ready(pid)
      assert {:ok, %{"status" => "pong"}} = Snakepit.execute("ping", %{}, pool: pid)
      assert {:ok, %{"b" => 2}} = Snakepit.Pool.execute("echo", [b: 2], pool: pid)

      assert {:error, %Error{reason: :timeout, details: details}} =
               Snakepit.execute("hang", %{}, pool: pid, timeout: 50)

      assert %{command: "hang", pool: ^pid} = details
    end

    test "a pid that is no longer alive is :pool_not_initialized" do
      pid = spawn(fn -> :ok end)
      ref = Process.monitor(pid)
      assert_receive {:DOWN, ^ref, :process, ^pid, _}

      assert {:error, %Error{reason: :pool_not_initialized, category: :pool}} =
               Snakepit.execute("ping", %{}, pool: pid)
    end
  end

  describe "another process given as :pool is called as upstream calls its pool" do
    test "its bare error reasons become Snakepit.Error as upstream's do" do
      for {reason, category} <- [
            worker_busy: :pool,
            session_worker_unavailable: :pool,
            pool_saturated: :pool,
            pool_not_initialized: :pool,
            queue_timeout: :timeout,
            worker_timeout: :timeout
          ] do
        {:ok, stub} = start_supervised({StubPool, {{:error, reason}, self()}}, id: reason)

        assert {:error, %Error{reason: ^reason, category: ^category, details: details}} =
                 Snakepit.execute("ping", %{a: 1}, pool: stub, timeout: 500)

        assert details.reason == reason
        assert details.command == "ping"
        assert details.pool == stub
        assert_receive {:stub_called, {:execute, "ping", %{a: 1}, opts}}
        assert opts[:pool] == stub and opts[:timeout] == 500
      end
    end

    test "other answers" do
      {:ok, stub} = start_supervised({StubPool, {{:ok, :late}, self()}}, id: :ok)
      assert {:ok, :late} = Snakepit.execute("ping", %{}, pool: stub)

      {:ok, stub} =
        start_supervised({StubPool, {{:error, {:worker_exit, :killed}}, self()}}, id: :exit)

      assert {:error, %Error{reason: :worker_exit, category: :worker, details: details}} =
               Snakepit.execute("ping", %{}, pool: stub)

      assert details.exit_reason == :killed

      {:ok, stub} = start_supervised({StubPool, {{:error, "text"}, self()}}, id: :text)

      assert {:error,
              %Error{reason: :request_failed, category: :worker, details: %{reason: "text"}}} =
               Snakepit.execute("ping", %{}, pool: stub)

      mine = Error.new(:pool_saturated, "full")
      {:ok, stub} = start_supervised({StubPool, {{:error, mine}, self()}}, id: :mine)

      assert {:error, %Error{reason: :pool_saturated, message: "full"}} =
               Snakepit.execute("ping", %{}, pool: stub)
    end

    test "a registered name that is not a pool is not called" do
      name = :"stub_pool_#{System.unique_integer([:positive])}"
      start_supervised!({StubPool, {{:error, :worker_busy}, self(), name}})

      assert {:error, %Error{reason: :pool_not_initialized}} =
               Snakepit.execute("ping", %{}, pool: name)

      refute_received {:stub_called, _}
    end

    test "no answer within :timeout is a :timeout error naming the command" do
      {:ok, stub} = start_supervised({StubPool, {:hold, self()}})

      assert {:error, %Error{reason: :timeout, category: :timeout, details: details}} =
               Snakepit.execute("ping", %{}, pool: stub, timeout: 25)

      assert details.command == "ping"
      assert details.timeout_ms == 25
      assert Process.alive?(stub)
    end

    test "a process that exits before answering is :pool_shutdown" do
      {:ok, stub} = GenServer.start(StubPool, {:exit, self()})

      assert {:error, %Error{reason: :pool_shutdown, details: %{exit_reason: :boom}}} =
               Snakepit.execute("ping", %{}, pool: stub)
    end
  end
end
