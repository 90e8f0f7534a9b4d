defmodule Snakepit.Bridge.SessionStoreTest do
  # Each test runs its own store (its own name, table and clock), so the tests run together.
  use ExUnit.Case, async: true

  alias Snakepit.Bridge.{Session, SessionStore}

  @start 1_000

  setup context do
    clock = :atomics.new(1, signed: true)
    :atomics.put(clock, 1, @start)
    store = :"session_store_#{System.unique_integer([:positive])}"

    opts =
      [name: store, clock: fn -> :atomics.get(clock, 1) end, cleanup_interval: :infinity]
      |> Keyword.merge(context[:store_opts] || [])

    pid = start_supervised!({SessionStore, opts})
    %{store: store, pid: pid, clock: clock}
  end

  defp advance(clock, seconds), do: :atomics.add(clock, 1, seconds)

  # A call the owner answers after every message sent to it before (the touches of reads).
  defp sync(store), do: SessionStore.get_stats(store)

  describe "sessions" do
    test "create, get, update and delete", %{store: store} do
      assert {:ok, %Session{id: "s1", ttl: 3600, metadata: %{}, programs: %{}} = session} =
               SessionStore.create_session(store, "s1", [])

      assert session.created_at == @start and session.last_accessed == @start
      assert {:ok, ^session} = SessionStore.get_session(store, "s1")

      assert {:ok, updated} =
               SessionStore.update_session(store, "s1", &Session.put_metadata(&1, :user, 42))

      assert updated.metadata == %{user: 42}
      assert {:ok, ^updated} = SessionStore.get_session(store, "s1")
      assert SessionStore.session_exists?(store, "s1")
      assert SessionStore.list_sessions(store) == ["s1"]

      assert :ok = SessionStore.delete_session(store, "s1")
      assert {:error, :not_found} = SessionStore.get_session(store, "s1")
      refute SessionStore.session_exists?(store, "s1")
      assert :ok = SessionStore.delete_session(store, "s1")
      assert {:error, :not_found} = SessionStore.update_session(store, "s1", & &1)
    end

    test "options of create_session/3 are kept; invalid ones are upstream's errors",
         %{store: store} do
      assert {:ok, session} =
               SessionStore.create_session(store, "s1",
                 ttl: 60,
                 metadata: %{a: 1},
                 programs: %{"p" => 1}
               )

      assert %{ttl: 60, metadata: %{a: 1}, programs: %{"p" => 1}} = session
      assert session.stats.program_count == 1
      assert {:error, :invalid_ttl} = SessionStore.create_session(store, "s2", ttl: -1)
      assert {:error, :invalid_metadata} = SessionStore.create_session(store, "s2", metadata: 1)
      refute SessionStore.session_exists?(store, "s2")

      assert_raise ArgumentError, ~r/keyword list, got: %{}/, fn ->
        SessionStore.create_session(store, "s2", %{})
      end
    end

    test "a duplicate create returns the existing session unchanged", %{
      store: store,
      clock: clock
    } do
      {:ok, first} = SessionStore.create_session(store, "dup", metadata: %{n: 1})
      advance(clock, 5)
      assert {:ok, ^first} = SessionStore.create_session(store, "dup", metadata: %{n: 2}, ttl: 1)
      assert %{sessions_created: 1, current_sessions: 1} = SessionStore.get_stats(store)
    end

    test "concurrent creates from many processes make each session once", %{store: store} do
      ids = for i <- 1..20, do: "shared_#{i}"

      results =
        1..50
        |> Enum.map(fn n ->
          Task.async(fn ->
            own = "own_#{n}"

            [{own, SessionStore.create_session(store, own, [])}] ++
              for id <- Enum.shuffle(ids), do: {id, SessionStore.create_session(store, id, [])}
          end)
        end)
        |> Enum.flat_map(&Task.await/1)

      for {id, replies} <- Enum.group_by(results, &elem(&1, 0), &elem(&1, 1)) do
        assert [{:ok, %Session{id: ^id}}] = Enum.uniq(replies)
      end

      assert %{sessions_created: 70, current_sessions: 70} = SessionStore.get_stats(store)
      assert length(SessionStore.list_sessions(store)) == 70
    end

    test "reads do not go through the owner", %{store: store, pid: pid} do
      {:ok, session} = SessionStore.create_session(store, "s1", [])
      :ok = SessionStore.store_global_program(store, "g", :data)
      :sys.suspend(pid)

      try do
        assert {:ok, ^session} = SessionStore.get_session(store, "s1")
        assert SessionStore.session_exists?(store, "s1")
        assert SessionStore.list_sessions(store) == ["s1"]
        assert {:ok, :data} = SessionStore.get_global_program(store, "g")
      after
        :sys.resume(pid)
      end
    end

    test "the table is protected, concurrent and named", %{store: store} do
      {:ok, _} = SessionStore.create_session(store, "s1", [])

      for option <- [:read_concurrency, :write_concurrency, :decentralized_counters],
          do: assert(:ets.info(store, option) == true)

      assert :ets.info(store, :protection) == :protected
      assert_raise ArgumentError, fn -> :ets.insert(store, {"evil", 0, %{}}) end
    end

    test "a store without a name works through its pid" do
      pid =
        start_supervised!({SessionStore, name: nil, cleanup_interval: :infinity}, id: :unnamed)

      assert {:ok, _} = SessionStore.create_session(pid, "s1", [])
      assert {:ok, %Session{id: "s1"}} = SessionStore.get_session(pid, "s1")
      assert SessionStore.list_sessions(pid) == ["s1"]
    end

    test "reads from a stopped store exit as a call to it would", %{store: store} do
      {:ok, _} = SessionStore.create_session(store, "s1", [])
      stop_supervised!(store)
      assert {:noproc, _} = catch_exit(SessionStore.get_session(store, "s1"))
      assert {:noproc, _} = catch_exit(SessionStore.create_session(store, "s1", []))
    end
  end

  describe "update_session/3" do
    setup %{store: store} do
      {:ok, session} = SessionStore.create_session(store, "s1", metadata: %{keep: true})
      %{session: session}
    end

    test "a function that raises, throws or exits leaves the session and the owner unchanged",
         %{store: store, pid: pid, session: session} do
      assert {:error, {:update_failed, %RuntimeError{message: "boom"}}} =
               SessionStore.update_session(store, "s1", fn _ -> raise "boom" end)

      assert {:error, {:update_failed, {:throw, :thrown}}} =
               SessionStore.update_session(store, "s1", fn _ -> throw(:thrown) end)

      assert {:error, {:update_failed, {:exit, :gone}}} =
               SessionStore.update_session(store, "s1", fn _ -> exit(:gone) end)

      assert Process.whereis(store) == pid
      assert {:ok, ^session} = SessionStore.get_session(store, "s1")
    end

    test "a result that is not a valid session with the same id is refused", %{store: store} do
      assert {:error, :not_a_session} = SessionStore.update_session(store, "s1", fn _ -> %{} end)
      assert {:error, :invalid_id} = SessionStore.update_session(store, "s1", &%{&1 | id: "s2"})
      assert {:error, :invalid_ttl} = SessionStore.update_session(store, "s1", &%{&1 | ttl: nil})
      assert {:ok, %Session{ttl: 3600}} = SessionStore.get_session(store, "s1")
    end

    test "a function calling the store's writes fails instead of deadlocking", %{store: store} do
      assert {:error, {:update_failed, {:exit, {:calling_self, _}}}} =
               SessionStore.update_session(store, "s1", fn session ->
                 SessionStore.delete_session(store, "s1")
                 session
               end)

      assert SessionStore.session_exists?(store, "s1")
    end

    test "extra keys stay, as upstream's Map.put examples expect", %{store: store} do
      assert {:ok, updated} =
               SessionStore.update_session(store, "s1", &Map.put(&1, :custom_data, %{id: 456}))

      assert updated.custom_data == %{id: 456}
    end

    test "a function that is not of arity one raises", %{store: store} do
      assert_raise ArgumentError, ~r/got: :nope/, fn ->
        SessionStore.update_session(store, "s1", :nope)
      end
    end
  end

  describe "TTL" do
    test "a session expires ttl seconds after its last access", %{store: store, clock: clock} do
      {:ok, _} = SessionStore.create_session(store, "s1", ttl: 10)
      advance(clock, 10)
      assert SessionStore.session_exists?(store, "s1")
      advance(clock, 1)
      refute SessionStore.session_exists?(store, "s1")
      assert {:error, :not_found} = SessionStore.get_session(store, "s1")
      assert SessionStore.list_sessions(store) == []
      # Still in the table until a cleanup, as upstream counts it.
      assert %{current_sessions: 1} = SessionStore.get_stats(store)
      assert SessionStore.cleanup_expired_sessions(store) == 1
      assert %{current_sessions: 0, sessions_expired: 1} = SessionStore.get_stats(store)
    end

    test "the default TTL is 3600 seconds", %{store: store, clock: clock} do
      {:ok, %Session{ttl: 3600}} = SessionStore.create_session(store, "s1", [])
      advance(clock, 3600)
      assert SessionStore.cleanup_expired_sessions(store) == 0
      advance(clock, 1)
      assert SessionStore.cleanup_expired_sessions(store) == 1
    end

    test "a ttl of 0 lives until the next second", %{store: store, clock: clock} do
      {:ok, _} = SessionStore.create_session(store, "s1", ttl: 0)
      assert {:ok, _} = SessionStore.get_session(store, "s1")
      advance(clock, 1)
      assert SessionStore.cleanup_expired_sessions(store) == 1
    end

    test "get_session, get_program and writes renew it; exists? and list do not",
         %{store: store, clock: clock} do
      accesses = [
        {true, &SessionStore.get_session(store, &1)},
        {true, &SessionStore.get_program(store, &1, "none")},
        {true, &SessionStore.update_session(store, &1, fn session -> session end)},
        {true, &SessionStore.store_program(store, &1, "p", 1)},
        {true, &SessionStore.store_worker_session(store, &1, "w1")},
        {false, &SessionStore.session_exists?(store, &1)},
        {false, fn _id -> SessionStore.list_sessions(store) end}
      ]

      for {{renews?, access}, i} <- Enum.with_index(accesses) do
        id = "s#{i}"
        {:ok, _} = SessionStore.create_session(store, id, ttl: 10)
        advance(clock, 8)
        access.(id)
        sync(store)
        # 16 s after the creation, 8 s after the access.
        advance(clock, 8)
        assert SessionStore.session_exists?(store, id) == renews?, "access #{i}"
      end
    end

    test "a renewal by a read reaches the owner before the reader's next call",
         %{store: store, clock: clock} do
      {:ok, _} = SessionStore.create_session(store, "s1", ttl: 10)
      advance(clock, 10)
      assert {:ok, %Session{last_accessed: 1010}} = SessionStore.get_session(store, "s1")
      advance(clock, 1)
      assert SessionStore.cleanup_expired_sessions(store) == 0
      assert {:ok, %Session{last_accessed: 1011}} = SessionStore.get_session(store, "s1")
    end

    test "creating an expired session's id makes a new session", %{store: store, clock: clock} do
      {:ok, old} = SessionStore.create_session(store, "s1", ttl: 1, metadata: %{old: true})
      advance(clock, 2)
      assert {:ok, new} = SessionStore.create_session(store, "s1", [])
      assert new.metadata == %{} and new.created_at == old.created_at + 2

      assert %{sessions_created: 2, sessions_expired: 1, current_sessions: 1} =
               SessionStore.get_stats(store)
    end

    test "the periodic cleanup is scheduled and removes expired sessions",
         %{store: store, clock: clock} do
      pid =
        start_supervised!(
          {SessionStore,
           name: :"#{store}_periodic",
           clock: fn -> :atomics.get(clock, 1) end,
           cleanup_interval: 60_000},
          id: :periodic
        )

      assert Process.read_timer(:sys.get_state(pid).cleanup_timer_ref) in 1..60_000
      {:ok, _} = SessionStore.create_session(pid, "s1", ttl: 1)
      advance(clock, 2)
      # The timer's message, sent now rather than waited for.
      send(pid, :cleanup_expired_sessions)

      assert %{sessions_expired: 1, cleanup_runs: 1, current_sessions: 0} =
               SessionStore.get_stats(pid)

      assert is_reference(:sys.get_state(pid).cleanup_timer_ref)
    end
  end

  describe "quota" do
    @describetag store_opts: [max_sessions: 2]

    test "max_sessions sessions at most", %{store: store} do
      {:ok, _} = SessionStore.create_session(store, "s1", [])
      {:ok, _} = SessionStore.create_session(store, "s2", [])
      assert {:error, :session_quota_exceeded} = SessionStore.create_session(store, "s3", [])
      # An existing id is no new session.
      assert {:ok, %Session{id: "s1"}} = SessionStore.create_session(store, "s1", [])

      assert {:error, :session_quota_exceeded} =
               SessionStore.store_worker_session(store, "s3", "w")

      :ok = SessionStore.delete_session(store, "s1")
      assert {:ok, _} = SessionStore.create_session(store, "s3", [])
      assert %{sessions_created: 3, current_sessions: 2} = SessionStore.get_stats(store)
    end

    test "expired sessions hold no place, even before a cleanup", %{store: store, clock: clock} do
      {:ok, _} = SessionStore.create_session(store, "s1", ttl: 0)
      {:ok, _} = SessionStore.create_session(store, "s2", ttl: 100)
      advance(clock, 1)
      assert {:ok, _} = SessionStore.create_session(store, "s3", [])
      assert Enum.sort(SessionStore.list_sessions(store)) == ["s2", "s3"]
    end

    test ":infinity has no bound" do
      pid = start_supervised!({SessionStore, name: nil, max_sessions: :infinity}, id: :infinite)
      for i <- 1..50, do: assert({:ok, _} = SessionStore.create_session(pid, "s#{i}", []))
    end
  end

  describe "programs" do
    test "store, get and update a session's programs", %{store: store} do
      {:ok, _} = SessionStore.create_session(store, "s1", [])
      assert :ok = SessionStore.store_program(store, "s1", "p1", %{v: 1})
      assert {:ok, %{v: 1}} = SessionStore.get_program(store, "s1", "p1")
      assert :ok = SessionStore.update_program(store, "s1", "p1", %{v: 2})
      assert {:ok, %{v: 2}} = SessionStore.get_program(store, "s1", "p1")
      assert {:error, :not_found} = SessionStore.get_program(store, "s1", "p2")
      assert {:ok, %Session{stats: %{program_count: 1}}} = SessionStore.get_session(store, "s1")
    end

    test "programs of a missing session", %{store: store} do
      assert {:error, :not_found} = SessionStore.store_program(store, "none", "p1", 1)
      assert {:error, :not_found} = SessionStore.get_program(store, "none", "p1")
    end

    test "a program id must be a string", %{store: store} do
      assert_raise ArgumentError, ~r/got: :p1/, fn ->
        SessionStore.store_program(store, "s1", :p1, 1)
      end

      assert_raise ArgumentError, ~r/got: 1/, fn -> SessionStore.get_global_program(store, 1) end
    end

    test "global programs", %{store: store, clock: clock} do
      assert :ok = SessionStore.store_global_program(store, "g1", %{t: 1})
      assert {:ok, %{t: 1}} = SessionStore.get_global_program(store, "g1")
      assert :ok = SessionStore.store_global_program(store, "g1", %{t: 2})
      assert {:ok, %{t: 2}} = SessionStore.get_global_program(store, "g1")
      assert :ok = SessionStore.delete_global_program(store, "g1")
      assert :ok = SessionStore.delete_global_program(store, "g1")
      assert {:error, :not_found} = SessionStore.get_global_program(store, "g1")

      # They live global_program_ttl (3600) seconds after they are stored.
      :ok = SessionStore.store_global_program(store, "g2", :x)
      advance(clock, 3600)
      assert {:ok, :x} = SessionStore.get_global_program(store, "g2")
      advance(clock, 1)
      assert {:error, :not_found} = SessionStore.get_global_program(store, "g2")
      SessionStore.cleanup_expired_sessions(store)

      assert %{global_programs_stored: 3, global_programs_deleted: 1, global_programs_expired: 1} =
               SessionStore.get_stats(store)
    end
  end

  describe "store_worker_session/3" do
    test "records the worker, creating the session if needed", %{store: store} do
      assert :ok = SessionStore.store_worker_session(store, "s1", "worker_1")
      assert {:ok, %Session{last_worker_id: "worker_1"}} = SessionStore.get_session(store, "s1")
      assert :ok = SessionStore.store_worker_session(store, "s1", "worker_2")
      assert {:ok, %Session{last_worker_id: "worker_2"}} = SessionStore.get_session(store, "s1")
      assert %{sessions_created: 1} = SessionStore.get_stats(store)
    end

    test "a worker id that is not a string is upstream's error", %{store: store} do
      assert {:error, :invalid_last_worker_id} =
               SessionStore.store_worker_session(store, "s1", 123)

      assert {:error, :not_found} = SessionStore.get_session(store, "s1")
    end
  end

  describe "session end" do
    test "subscribers learn of deletions and expiries", %{store: store, clock: clock} do
      :ok = SessionStore.subscribe(store)
      :ok = SessionStore.subscribe(store)
      {:ok, _} = SessionStore.create_session(store, "d1", [])
      {:ok, _} = SessionStore.create_session(store, "e1", ttl: 5)
      {:ok, _} = SessionStore.create_session(store, "e2", ttl: 5)
      {:ok, _} = SessionStore.create_session(store, "r1", ttl: 5)

      :ok = SessionStore.delete_session(store, "d1")
      assert_received {:snakepit_session_ended, "d1", :deleted}
      :ok = SessionStore.delete_session(store, "d1")

      advance(clock, 6)
      {:ok, _} = SessionStore.create_session(store, "r1", [])
      assert_received {:snakepit_session_ended, "r1", :expired}
      assert SessionStore.cleanup_expired_sessions(store) == 2
      assert_received {:snakepit_session_ended, "e1", :expired}
      assert_received {:snakepit_session_ended, "e2", :expired}

      # Once per session, however often the process subscribed.
      refute_received {:snakepit_session_ended, _, _}
    end

    test "unsubscribed and exited processes are told nothing", %{store: store, pid: pid} do
      :ok = SessionStore.subscribe(store)
      :ok = SessionStore.unsubscribe(store)
      {:ok, _} = SessionStore.create_session(store, "s1", [])
      :ok = SessionStore.delete_session(store, "s1")
      refute_received {:snakepit_session_ended, _, _}

      task = Task.async(fn -> SessionStore.subscribe(store) end)
      :ok = Task.await(task)
      ref = Process.monitor(task.pid)
      assert_receive {:DOWN, ^ref, :process, _, _}
      sync(store)
      assert :sys.get_state(pid).subscribers == %{}
    end
  end

  describe "session ids" do
    test "every entry point refuses an invalid id", %{store: store} do
      calls = [
        &SessionStore.create_session(store, &1, []),
        &SessionStore.get_session(store, &1),
        &SessionStore.update_session(store, &1, fn s -> s end),
        &SessionStore.delete_session(store, &1),
        &SessionStore.store_program(store, &1, "p", 1),
        &SessionStore.update_program(store, &1, "p", 1),
        &SessionStore.get_program(store, &1, "p"),
        &SessionStore.store_worker_session(store, &1, "w")
      ]

      for id <- ["", "a b", "../etc", "id\n", String.duplicate("a", 257)], call <- calls do
        assert {:error, %Snakepit.Error{reason: :invalid_session_id, category: :validation}} =
                 call.(id)

        refute SessionStore.session_exists?(store, id)
      end

      for id <- [nil, :atom, 1, ~c"chars"], call <- calls do
        assert_raise ArgumentError, ~r/a session id must be a string, got: /, fn -> call.(id) end
      end

      assert %{sessions_created: 0} = SessionStore.get_stats(store)
    end

    test "generated ids are accepted", %{store: store} do
      id = Snakepit.SessionId.generate()
      assert {:ok, %Session{id: ^id}} = SessionStore.create_session(store, id, [])
    end
  end

  describe "Session" do
    test "new/2, touch/2, expired?/2 and get_stats/2 in the given time" do
      session = Session.new("s1", now: 100, ttl: 10, programs: %{"p" => 1})
      assert %Session{created_at: 100, last_accessed: 100, last_worker_id: nil} = session
      assert Session.validate(session) == :ok
      refute Session.expired?(session, 110)
      assert Session.expired?(session, 111)
      assert Session.touch(session, 105).last_accessed == 105
      assert Session.touch(session, 90).last_accessed == 100

      assert %{age: 20, time_since_access: 20, total_items: 1, program_count: 1} =
               Session.get_stats(session, 120)
    end

    test "programs and metadata" do
      session = Session.new("s1") |> Session.put_program("p", 1) |> Session.put_program("p", 2)
      assert {:ok, 2} = Session.get_program(session, "p")
      assert session.stats.program_count == 1
      assert {:error, :not_found} = Session.get_program(Session.delete_program(session, "p"), "p")
      session = Session.put_metadata(session, :k, :v)
      assert Session.get_metadata(session, :k) == :v
      assert Session.get_metadata(session, :missing, :default) == :default
    end

    test "validate/1 names the first invalid field as upstream" do
      session = Session.new("s1", now: 10)

      for {change, reason} <- [
            {%{id: ""}, :invalid_id},
            {%{programs: []}, :invalid_programs},
            {%{metadata: nil}, :invalid_metadata},
            {%{created_at: 1.0}, :invalid_created_at},
            {%{last_accessed: nil}, :invalid_last_accessed},
            {%{ttl: -1}, :invalid_ttl},
            {%{last_accessed: 9}, :invalid_timestamps},
            {%{last_worker_id: 1}, :invalid_last_worker_id}
          ] do
        assert Session.validate(Map.merge(session, change)) == {:error, reason}
      end

      assert Session.validate(%{id: "s1"}) == {:error, :not_a_session}
    end
  end

  describe "starting" do
    test "invalid options raise with what was given" do
      for {opts, message} <- [
            {[default_ttl: -1], ~r/:default_ttl must be a non-negative integer, got: -1/},
            {[max_sessions: 0], ~r/:max_sessions must be a positive integer or :infinity/},
            {[cleanup_interval: "1"], ~r/:cleanup_interval .* got: "1"/},
            {[clock: :now], ~r/:clock must be a function/},
            {[bogus: 1], ~r/unknown keys \[:bogus\]/},
            {:not_a_list, ~r/keyword list, got: :not_a_list/}
          ] do
        assert_raise ArgumentError, message, fn -> SessionStore.start_link(opts) end
      end
    end

    test "a table name that is taken is an error", %{store: store} do
      assert {:error, {{:table_exists, ^store}, _}} =
               start_supervised({SessionStore, name: :other_store, table_name: store})
    end

    test "stats have upstream's keys", %{store: store} do
      stats = SessionStore.get_stats(store)

      for key <-
            [:sessions_created, :sessions_deleted, :sessions_expired, :cleanup_runs] ++
              [:current_sessions, :memory_usage_bytes, :table_info] ++
              [:global_programs_stored, :global_programs_deleted, :global_programs_expired],
          do: assert(Map.has_key?(stats, key), "missing #{key}")
    end

    test "terminate/2 takes upstream's bare state and cancels the cleanup timer" do
      ref = Process.send_after(self(), :cleanup_expired_sessions, 60_000)
      assert :ok = SessionStore.terminate(:shutdown, %{cleanup_timer_ref: ref})
      refute Process.read_timer(ref)
    end
  end
end

defmodule Snakepit.Bridge.SessionStoreAppTest do
  # The application's store, shared by every test: not async.
  use ExUnit.Case, async: false

  alias Snakepit.Bridge.SessionStore

  test "the application runs the store under Snakepit.Supervisor, with upstream's table" do
    assert {_, pid, :worker, _} =
             Enum.find(
               Supervisor.which_children(Snakepit.Supervisor),
               &(elem(&1, 0) == SessionStore)
             )

    assert Process.whereis(SessionStore) == pid
    assert :ets.info(:snakepit_sessions, :owner) == pid
  end

  test "the default store through upstream's arities" do
    id = "app_test_#{System.unique_integer([:positive])}"
    assert {:ok, %{id: ^id}} = SessionStore.create_session(id)
    assert {:ok, %{id: ^id}} = SessionStore.get_session(id)
    assert :ok = SessionStore.store_program(id, "p", 1)
    assert {:ok, 1} = SessionStore.get_program(id, "p")
    assert SessionStore.session_exists?(id)
    assert id in SessionStore.list_sessions()
    assert is_integer(SessionStore.cleanup_expired_sessions())
    assert SessionStore.get_stats().sessions_created >= 1
    :ok = SessionStore.subscribe()
    assert :ok = SessionStore.delete_session(id)
    assert_receive {:snakepit_session_ended, ^id, :deleted}
    :ok = SessionStore.unsubscribe()
    assert :ok = SessionStore.store_global_program("app_test_g", 2)
    assert {:ok, 2} = SessionStore.get_global_program("app_test_g")
    assert :ok = SessionStore.delete_global_program("app_test_g")
  end
end
