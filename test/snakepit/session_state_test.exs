defmodule Snakepit.SessionStateTest do
  # Per-session state on real Python workers (test/support/python/session_adapter.py) and the
  # end of a session reaching them: through `Snakepit.SessionHelpers`, the application's
  # session store, and a store with an injected clock whose expiry the test drives. The
  # adapter's `on_session_end` prints a line; the pool logs it; the tests wait for that line.
  use ExUnit.Case, async: true

  alias Snakepit.Bridge.SessionStore
  alias Snakepit.{Error, SessionHelpers, SessionId, TestPool}

  @adapter_args ["--adapter", "session_adapter.SessionAdapter"]

  setup do
    Snakepit.LogForwarder.forward_to_self()
    pool = TestPool.start!(size: 2, adapter_args: @adapter_args, affinity: :strict_queue)
    %{pool: pool}
  end

  defp bump(pool, session_id) do
    {:ok, result} = Snakepit.execute_in_session(session_id, "bump", %{}, pool: pool)
    result
  end

  # Waits until a worker of `pool` printed that `session_id` ended with `state`.
  defp assert_ended(pool, session_id, state),
    do:
      Snakepit.LogForwarder.assert_worker_logged(
        pool,
        "session_adapter: ended #{session_id} #{state}"
      )

  test "each session's state lasts across its calls on its worker; a call without one sees none",
       %{pool: pool} do
    [a, b] = [SessionId.generate(), SessionId.generate()]

    assert %{"count" => 1, "pid" => pid, "session_id" => ^a} = bump(pool, a)
    assert %{"count" => 2, "pid" => ^pid} = bump(pool, a)
    assert %{"count" => 1} = bump(pool, b)
    assert %{"count" => 3, "pid" => ^pid} = bump(pool, a)

    assert {:ok, %{"count" => nil, "session_id" => nil}} =
             Snakepit.execute("bump", %{}, pool: pool)
  end

  test "cleanup_session drops the state on the worker, after the adapter's hook", %{pool: pool} do
    id = SessionId.generate()
    %{"pid" => pid} = bump(pool, id)
    bump(pool, id)

    assert :ok = SessionHelpers.cleanup_session(id, pool: pool)
    assert_ended(pool, id, ~s({"count": 2}))
    assert Snakepit.Pool.session_info(pool, id) == nil
    # A fresh start: the binding and the state are gone (on whichever worker it lands).
    assert %{"count" => 1} = bump(pool, id)
    assert Enum.any?(Snakepit.list_workers(pool), &(&1.os_pid == pid))
  end

  test "deleting a session in the application's store ends it on every pool's workers",
       %{pool: pool} do
    id = SessionId.generate()
    assert {:ok, _} = SessionStore.create_session(id)
    bump(pool, id)

    :ok = SessionStore.delete_session(id)
    # Ended on the pool before delete_session returned: nothing brings it back.
    assert Snakepit.Pool.session_info(pool, id) == nil
    assert {:error, :not_found} = SessionStore.get_session(id)
    assert_ended(pool, id, ~s({"count": 1}))
    assert %{"count" => 1} = bump(pool, id)
    SessionStore.delete_session(id)
  end

  test "a session that expires in a store the pool subscribes to ends on its workers",
       %{pool: pool} do
    {:ok, clock} = Agent.start_link(fn -> 1_000 end)
    store = :"session_state_store_#{System.unique_integer([:positive])}"

    start_supervised!(
      {SessionStore,
       name: store, clock: fn -> Agent.get(clock, & &1) end, cleanup_interval: :infinity}
    )

    :ok = SessionStore.subscribe(store, Process.whereis(pool))
    id = SessionId.generate()
    {:ok, _} = SessionStore.create_session(store, id, ttl: 10)
    bump(pool, id)
    bump(pool, id)

    Agent.update(clock, &(&1 + 11))
    assert SessionStore.cleanup_expired_sessions(store) == 1
    assert_ended(pool, id, ~s({"count": 2}))
  end

  test "a session unused for the pool's :session_ttl ends on its workers" do
    # A TTL of 1 ms: the pool's timer expires the binding and then tells the workers; the test
    # waits for the worker's line.
    pool = TestPool.start!(size: 1, adapter_args: @adapter_args, session_ttl: 1)
    id = SessionId.generate()
    bump(pool, id)
    assert_ended(pool, id, ~s({"count": 1}))
    assert Snakepit.Pool.session_info(pool, id) == nil
  end

  describe "SessionHelpers" do
    setup do
      store = :"helpers_store_#{System.unique_integer([:positive])}"
      start_supervised!({SessionStore, name: store, max_sessions: 1, cleanup_interval: :infinity})
      %{store: store}
    end

    test "execute_with_session puts the session in the store and runs on its worker",
         %{pool: pool, store: store} do
      id = SessionId.generate()

      assert {:ok, %{"count" => 1, "pid" => pid}} =
               SessionHelpers.execute_with_session(id, "bump", %{}, pool: pool, store: store)

      assert {:ok, %{id: ^id}} = SessionStore.get_session(store, id)

      assert {:ok, info} = SessionHelpers.get_session_info(id, pool: pool, store: store)
      assert %{session: %{id: ^id}, os_pid: ^pid, affinity: :strict_queue} = info
      assert is_binary(info.worker_id) and is_integer(info.last_used_ms_ago)
    end

    test "a full store is an error and nothing runs", %{pool: pool, store: store} do
      {:ok, _} = SessionStore.create_session(store, "first", [])

      assert {:error, :session_quota_exceeded} =
               SessionHelpers.execute_with_session("second", "bump", %{}, pool: pool, store: store)

      assert %{requests: 0} = Snakepit.get_stats(pool)
    end

    test "get_session_info of an unknown session, and invalid ids", %{pool: pool, store: store} do
      assert {:error, :not_found} =
               SessionHelpers.get_session_info("nobody", pool: pool, store: store)

      # Known to the pool only (never put in this store).
      bump(pool, "pool-only")

      assert {:ok, %{session: nil, worker_id: worker_id}} =
               SessionHelpers.get_session_info("pool-only", pool: pool, store: store)

      assert is_binary(worker_id)

      for call <- [
            &SessionHelpers.get_session_info(&1, pool: pool, store: store),
            &SessionHelpers.cleanup_session(&1, pool: pool, store: store),
            &SessionHelpers.execute_with_session(&1, "bump", %{}, pool: pool, store: store)
          ] do
        assert {:error, %Error{reason: :invalid_session_id}} = call.("not valid!")
      end
    end
  end

  test "the application's store shows the worker a pool bound a session to, as upstream's does",
       %{pool: pool} do
    id = SessionId.generate()
    bump(pool, id)
    %{worker_id: worker_id} = Snakepit.Pool.session_info(pool, id)

    # Never created in the store: upstream's execute_in_session creates it; here the first
    # read does.
    assert {:ok, %{id: ^id, last_worker_id: ^worker_id}} = SessionStore.get_session(id)
    assert :ok = SessionHelpers.cleanup_session(id, pool: pool)
    assert {:error, :not_found} = SessionStore.get_session(id)
  end
end
