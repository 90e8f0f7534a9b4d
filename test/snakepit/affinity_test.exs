defmodule Snakepit.AffinityTest do
  @moduledoc """
  Session affinity on real Python workers (`Snakepit.execute_in_session/4`): each mode, the
  session's worker killed with SIGKILL under each, 1,000 concurrent sessions, and the options
  and configuration that choose a mode. Workers are held busy with `block` (`TestBlocker`),
  never by sleeping; a worker's death is waited for as the pool's `worker_exit` event.
  """
  use ExUnit.Case, async: true

  alias Snakepit.{Call, Error, TestBlocker, TestPool}

  @moduletag :tmp_dir

  defp pid_in(pool, session, opts \\ []) do
    assert {:ok, %{"pid" => pid, "session_id" => ^session}} =
             Snakepit.execute_in_session(session, "whoami", %{}, [pool: pool] ++ opts)

    pid
  end

  # Holds the session's worker busy with a request of the session itself.
  defp block_in(pool, session, dir, opts \\ []) do
    blocker = TestBlocker.new!(dir)

    {:ok, pending} =
      Call.submit(pool, "block", TestBlocker.args(blocker), [session_id: session] ++ opts)

    TestBlocker.assert_blocked(blocker)
    {blocker, pending}
  end

  defp release({blocker, pending}) do
    TestBlocker.release(blocker)
    Call.await(pending)
  end

  defp kill!(pool, os_pid) do
    {_, 0} = System.cmd("kill", ["-9", to_string(os_pid)])
    assert_receive {:snakepit_pool_event, ^pool, {:worker_exit, _, ^os_pid, _}}
  end

  describe "session ids" do
    test "an invalid one is :invalid_session_id and nothing is sent" do
      pool = TestPool.start!(size: 1)

      for bad <- ["", "a b", "a/b", "é", String.duplicate("a", 257), 12, nil, :atom] do
        assert {:error, %Error{reason: :invalid_session_id, message: message}} =
                 Snakepit.execute_in_session(bad, "whoami", %{}, pool: pool)

        assert message =~ String.slice(inspect(bad), 0, 40)
      end

      assert {:error, %Error{reason: :invalid_session_id}} =
               Snakepit.execute("whoami", %{}, pool: pool, session_id: "no spaces")

      assert %{requests: 0, sessions: 0} = Snakepit.get_stats(pool)
      max = String.duplicate("a-Z_9", 51) <> "x"
      assert byte_size(max) == 256
      assert pid_in(pool, max)
    end
  end

  describe ":hint" do
    test "a session stays on its worker while that worker is free" do
      pool = TestPool.start!(size: 3)
      pid = pid_in(pool, "s1")
      for _ <- 1..20, do: assert(pid_in(pool, "s1") == pid)

      assert %{os_pid: ^pid, affinity: :hint, worker_id: id, idle_ms: idle} =
               Snakepit.Pool.session_info(pool, "s1")

      assert is_binary(id) and idle >= 0
      assert %{sessions: 1} = Snakepit.get_stats(pool)
    end

    test "the session's worker busy and another free: the free one serves and the session moves",
         %{tmp_dir: dir} do
      pool = TestPool.start!(size: 2)
      first = pid_in(pool, "s1")
      held = block_in(pool, "s1", dir)
      other = pid_in(pool, "s1")
      assert other != first
      assert %{os_pid: ^other} = Snakepit.Pool.session_info(pool, "s1")
      assert {:ok, _} = release(held)
      assert pid_in(pool, "s1") == other
    end

    test "every worker busy: it waits for the first worker to free up, which takes it over",
         %{tmp_dir: dir} do
      pool = TestPool.start!(size: 2)
      home = pid_in(pool, "s1")
      held_home = block_in(pool, "s1", dir)
      held_other = block_in(pool, "other", dir)
      {:ok, waiting} = Call.submit(pool, "whoami", %{}, session_id: "s1")
      assert %{queued: 1} = Snakepit.get_stats(pool)

      # The other worker frees first: it takes the session's request.
      assert {:ok, _} = release(held_other)
      assert {:ok, %{"pid" => moved}} = Call.await(waiting)
      assert moved != home
      assert {:ok, _} = release(held_home)
    end
  end

  describe ":strict_queue" do
    test "waits for the session's worker even while another is free", %{tmp_dir: dir} do
      pool = TestPool.start!(size: 2, affinity: :strict_queue)
      home = pid_in(pool, "s1")
      held = block_in(pool, "s1", dir)
      {:ok, waiting} = Call.submit(pool, "whoami", %{}, session_id: "s1")
      assert %{queued: 1, available: 1} = Snakepit.get_stats(pool)
      # Plain requests use the free worker meanwhile.
      assert {:ok, %{"pid" => other}} = Snakepit.execute("whoami", %{}, pool: pool)
      assert other != home
      assert {:ok, _} = release(held)
      assert {:ok, %{"pid" => ^home}} = Call.await(waiting)
    end

    test "the wait is bounded by the queue timeout", %{tmp_dir: dir} do
      pool = TestPool.start!(size: 2, queue_timeout: 200)
      pid_in(pool, "s1", affinity: :strict_queue)
      held = block_in(pool, "s1", dir, affinity: :strict_queue)

      assert {:error, %Error{reason: :queue_timeout, details: %{session_id: "s1"}}} =
               Snakepit.execute_in_session("s1", "whoami", %{},
                 pool: pool,
                 affinity: :strict_queue
               )

      assert {:ok, _} = release(held)
    end
  end

  describe ":strict_fail_fast" do
    test ":worker_busy at once while the session's worker is busy; nothing is queued",
         %{tmp_dir: dir} do
      pool = TestPool.start!(size: 2)
      home = pid_in(pool, "s1", affinity: :strict_fail_fast)
      held = block_in(pool, "s1", dir)
      %{requests: before} = Snakepit.get_stats(pool)

      assert {:error, %Error{reason: :worker_busy, category: :pool, message: message}} =
               Snakepit.execute_in_session("s1", "whoami", %{},
                 pool: pool,
                 affinity: :strict_fail_fast
               )

      assert message =~ "busy"
      assert %{requests: ^before, worker_busy: 1, queued: 0} = Snakepit.get_stats(pool)
      assert {:ok, _} = release(held)
      assert pid_in(pool, "s1", affinity: :strict_fail_fast) == home
    end

    test "the pool's affinity is the default, a call's own overrides it", %{tmp_dir: dir} do
      pool = TestPool.start!(size: 2, affinity: "STRICT_FAIL_FAST")
      home = pid_in(pool, "s1")
      held = block_in(pool, "s1", dir)

      assert {:error, %Error{reason: :worker_busy}} =
               Snakepit.execute_in_session("s1", "whoami", %{}, pool: pool)

      assert pid_in(pool, "s1", affinity: :hint) != home
      assert {:ok, _} = release(held)
    end
  end

  describe "the session's worker killed" do
    test ":hint moves on to another worker" do
      pool = TestPool.start!(size: 2)
      home = pid_in(pool, "s1")
      kill!(pool, home)
      moved = pid_in(pool, "s1")
      assert moved != home
      assert %{os_pid: ^moved} = Snakepit.Pool.session_info(pool, "s1")
    end

    for mode <- [:strict_queue, :strict_fail_fast] do
      test "#{mode}: :session_worker_unavailable until the session is forgotten or moved" do
        mode = unquote(mode)
        pool = TestPool.start!(size: 2)
        home = pid_in(pool, "s1", affinity: mode)
        kill!(pool, home)

        for _ <- 1..2 do
          assert {:error, %Error{reason: :session_worker_unavailable, category: :pool}} =
                   Snakepit.execute_in_session("s1", "whoami", %{}, pool: pool, affinity: mode)
        end

        assert %{worker_id: nil, os_pid: nil} = Snakepit.Pool.session_info(pool, "s1")
        assert %{session_worker_unavailable: 2} = Snakepit.get_stats(pool)

        assert Snakepit.Pool.end_session(pool, "s1")
        assert Snakepit.Pool.session_info(pool, "s1") == nil
        assert pid_in(pool, "s1", affinity: mode) != home
      end
    end

    test "strict requests waiting for it fail with :session_worker_unavailable", %{tmp_dir: dir} do
      pool = TestPool.start!(size: 2, affinity: :strict_queue)
      home = pid_in(pool, "s1")
      held = block_in(pool, "s1", dir)
      {:ok, waiting} = Call.submit(pool, "whoami", %{}, session_id: "s1")
      kill!(pool, home)
      assert {:error, %Error{reason: :worker_crashed}} = Call.await(elem(held, 1))
      assert {:error, %Error{reason: :session_worker_unavailable}} = Call.await(waiting)
      assert %{session_worker_lost: 1} = Snakepit.get_stats(pool)
    end

    test "hint requests waiting for it are served by another worker", %{tmp_dir: dir} do
      pool = TestPool.start!(size: 2)
      home = pid_in(pool, "s1")
      held_home = block_in(pool, "s1", dir)
      held_other = block_in(pool, "other", dir)
      {:ok, waiting} = Call.submit(pool, "whoami", %{}, session_id: "s1")
      kill!(pool, home)
      assert {:error, %Error{reason: :worker_crashed}} = Call.await(elem(held_home, 1))
      # The replacement (or the other worker, once free) serves it.
      assert {:ok, %{"pid" => pid}} = Call.await(waiting)
      assert pid != home
      assert {:ok, _} = release(held_other)
    end
  end

  describe "1,000 concurrent sessions × 10 calls" do
    @describetag :slow
    test "strict: each session's calls reach one worker, whose state for it counts 1..10" do
      pool = TestPool.start!(size: 4, max_queue_size: 5_000, queue_timeout: 60_000)
      results = run_sessions(pool, 1_000, 10, affinity: :strict_queue)

      for {session, calls} <- results do
        assert [%{"pid" => pid} | _] = calls
        assert Enum.all?(calls, &(&1["pid"] == pid and &1["session_id"] == session))
        assert Enum.map(calls, & &1["count"]) == Enum.to_list(1..10)
      end

      assert %{sessions: 1_000, completed: 10_000, errors: 0} = Snakepit.get_stats(pool)
    end

    test "hint: no call sees another session's state; a session's count grows on its worker" do
      pool = TestPool.start!(size: 4, max_queue_size: 5_000, queue_timeout: 60_000)
      results = run_sessions(pool, 1_000, 10, [])

      for {session, calls} <- results do
        assert Enum.all?(calls, &(&1["session_id"] == session))
        # Counts per worker rise one by one: the worker's state for this session is this
        # session's alone, and follows the session's calls on it in order.
        for {_pid, on_worker} <- Enum.group_by(calls, & &1["pid"]) do
          counts = Enum.map(on_worker, & &1["count"])
          assert counts == Enum.to_list(1..length(counts))
        end
      end

      assert %{completed: 10_000, errors: 0} = Snakepit.get_stats(pool)
    end
  end

  # `sessions` processes at once, each making `calls` calls of `bump` one after another.
  defp run_sessions(pool, sessions, calls, opts) do
    1..sessions
    |> Enum.map(fn n ->
      session = "session-#{n}"

      Task.async(fn ->
        results =
          for _ <- 1..calls do
            {:ok, result} =
              Snakepit.execute_in_session(session, "bump", %{}, [pool: pool] ++ opts)

            result
          end

        {session, results}
      end)
    end)
    |> Task.await_many(120_000)
  end

  describe "configuration" do
    test "upstream's affinity key, top level or per pool, strings in any case" do
      [default, ml] =
        Snakepit.Config.pools!(
          affinity: "Strict_Queue",
          session_default_ttl: 60,
          pools: [%{name: :default}, %{name: :ml, affinity: :strict_fail_fast}]
        )

      assert default[:affinity] == :strict_queue
      assert default[:session_ttl] == 60_000
      assert ml[:affinity] == :strict_fail_fast
      assert Snakepit.Config.ignored(affinity: :hint, session_default_ttl: 10) == []

      assert_raise ArgumentError, ~r/`pools\[:ml\].affinity`.*:sticky/, fn ->
        Snakepit.Config.pools!(pools: [%{name: :ml, affinity: :sticky}])
      end

      assert_raise ArgumentError, ~r/:affinity/, fn ->
        Snakepit.Pool.Options.validate!(affinity: :sometimes)
      end
    end

    test "an unknown affinity in a call is :invalid_option" do
      pool = TestPool.start!(size: 1)

      assert {:error, %Error{reason: :invalid_option, details: %{option: :affinity}}} =
               Snakepit.execute_in_session("s1", "whoami", %{}, pool: pool, affinity: :sticky)
    end
  end
end
