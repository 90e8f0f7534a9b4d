defmodule Snakepit.Bridge.SessionStore do
  @moduledoc """
  Sessions and programs kept in ETS, upstream Snakepit's session store (the API of v0.4.3 and
  v0.13 where they agree, and of the design documents).

  The application starts one, registered as `Snakepit.Bridge.SessionStore` with the table
  `:snakepit_sessions`; every function takes an optional first argument naming another store,
  started with `start_link/1` (or as a child: `{Snakepit.Bridge.SessionStore, name: MyStore,
  table_name: :my_sessions}`).

      {:ok, session} = SessionStore.create_session("user_42", ttl: 7200)
      :ok = SessionStore.store_program("user_42", "qa", %{signature: "question -> answer"})
      {:ok, program} = SessionStore.get_program("user_42", "qa")

      {:ok, session} =
        SessionStore.update_session("user_42", &Session.put_metadata(&1, :turns, 3))

      :ok = SessionStore.delete_session("user_42")

  ## Semantics

    * A process owns the table (`:protected`, read and write concurrency, decentralized
      counters) and makes every write, one at a time, so `create_session/2` of an existing id
      returns the existing session, and `update_session/2` is atomic. Reads (`get_session/1`,
      `get_program/2`, `session_exists?/1`, `list_sessions/0`, `get_global_program/1`) read
      the table in the caller, without the owner.
    * A session expires `ttl` seconds (default `3600`) after its last access: `get_session/1`,
      `get_program/2` and every write renew it (`session_exists?/1` and `list_sessions/0` do
      not). An expired session is gone for every function at once, even before the cleanup
      removes it from the table. The cleanup runs every `:cleanup_interval` ms and when
      `cleanup_expired_sessions/0` is called; it removes expired sessions and global
      programs with `:ets.select_delete/2`.
    * `max_sessions` bounds the sessions held: creating one more returns
      `{:error, :session_quota_exceeded}` (after a cleanup, so expired sessions never hold a
      place).
    * The update function of `update_session/2` runs in the owner; if it raises, throws or
      exits, the call returns `{:error, {:update_failed, exception}}` (or
      `{:error, {:update_failed, {kind, reason}}}` for a throw or an exit) and the session is
      unchanged. Its result must be a valid `Snakepit.Bridge.Session` with the same id (else
      `{:error, reason}` from `Snakepit.Bridge.Session.validate/1`, or `:invalid_id`).
    * Session ids are checked on every entry point (`Snakepit.SessionId`): a string that is not
      a valid session id returns `{:error, %Snakepit.Error{reason: :invalid_session_id}}` (from
      `session_exists?/1`: `false`); anything but a string raises `ArgumentError`.
    * Errors keep upstream's bare reasons: `{:error, :not_found}`,
      `{:error, :session_quota_exceeded}`, `{:error, {:update_failed, _}}`.

  ## Session end

  A process that must learn when sessions end calls `subscribe/0`. For each session that ends
  it then receives

      {:snakepit_session_ended, session_id, reason}

  with `reason` `:deleted` (by `delete_session/1`) or `:expired` (removed by a cleanup, or
  replaced by `create_session/2` after it expired). A subscription lasts until
  `unsubscribe/0` or the subscriber's exit. The store's own exit ends every session it held
  without messages: a subscriber that keeps per-session resources monitors the store.

  With `:telemetry` loaded, a created session emits
  `[:snakepit, :session_store, :session, :created]` and each expired one
  `[:snakepit, :session_store, :session, :expired]` (upstream's names; see
  `Snakepit.Telemetry`).

  ## Options

  Each option of `start_link/1` falls back to the application environment, as upstream:

    * `:name` - the registered name (default `Snakepit.Bridge.SessionStore`; `nil`: none)
    * `:table_name` - the ETS table's name (default `:snakepit_sessions` for the
      application's store, else the `:name` when it is an atom); global programs are in
      `:"<table_name>_global_programs"`
    * `:default_ttl` - seconds (default `config :snakepit, session_default_ttl:` or `3600`)
    * `:cleanup_interval` - ms between cleanups, or `:infinity` for none (default
      `session_cleanup_interval:` or `60_000`)
    * `:max_sessions` - a positive integer or `:infinity` (default `session_max_sessions:` or
      `10_000`)
    * `:global_program_ttl` - seconds a global program lives after it is stored (default
      `3600`, as v0.4.3)
    * `:strict_mode` - log a warning at each periodic cleanup while the store holds 80% of
      `max_sessions` or more (default `false`)
    * `:clock` - the time in seconds, as a function of no arguments or `{module, function,
      args}` (default monotonic seconds); tests pass their own to expire sessions without
      waiting

  `config :snakepit, session_store: [default_ttl: ..., max_sessions: ..., cleanup_interval:
  ..., strict_mode: ...]` (a keyword list or map, as upstream's guide) sets the same and wins
  over the `session_*` keys.

  ## Differences from upstream

    * A read renews the session without a round trip to the owner: the caller sends it the new
      access time.
    * An expired session is never returned or revived, even before the cleanup; upstream
      returned (and renewed) it until the cleanup ran.
    * `get_stats/0` counts a deletion only when a session was deleted (upstream counted calls).
    * v0.4.3's variables API (`register_variable/5`, ...) is not provided (v0.13 removed it).
    * No telemetry events.
  """

  use GenServer
  require Logger

  alias Snakepit.Bridge.Session
  alias Snakepit.SessionId

  @default_table :snakepit_sessions
  @options [
    :name,
    :table_name,
    :default_ttl,
    :cleanup_interval,
    :max_sessions,
    :global_program_ttl,
    :strict_mode,
    :clock
  ]
  # Share of `max_sessions` from which strict mode warns (upstream's default).
  @warning_threshold 0.8

  # Telemetry events (`Snakepit.Telemetry`), upstream's names.
  @created [:snakepit, :session_store, :session, :created]
  @expired [:snakepit, :session_store, :session, :expired]

  @typedoc "A store: its name or pid (default `Snakepit.Bridge.SessionStore`)."
  @type server :: GenServer.server()

  @typedoc "Why a session ended, in `{:snakepit_session_ended, session_id, reason}`."
  @type end_reason :: :deleted | :expired

  @typedoc "The error for a string that is not a valid session id."
  @type invalid_id :: {:error, Snakepit.Error.t()}

  ## Starting

  @doc """
  Starts a store (see "Options" in the module doc). Invalid options raise `ArgumentError`.
  """
  @spec start_link(keyword()) :: GenServer.on_start()
  def start_link(opts \\ []) do
    config = config!(opts)
    gen_opts = if config.name, do: [name: config.name], else: []
    GenServer.start_link(__MODULE__, config, gen_opts)
  end

  @doc "A child spec whose id is the store's name, so that one supervisor can run several."
  @spec child_spec(keyword()) :: Supervisor.child_spec()
  def child_spec(opts) do
    %{id: Keyword.get(opts, :name, __MODULE__), start: {__MODULE__, :start_link, [opts]}}
  end

  ## Sessions

  @doc """
  Creates the session `session_id`. Options: `:ttl` (seconds, default the store's
  `:default_ttl`), `:metadata`, `:programs` (maps), `:last_worker_id`.

  An id that already names a session returns that session unchanged (the options are
  ignored), so concurrent creations of one id all get the same session. Returns
  `{:error, :session_quota_exceeded}` when the store holds `max_sessions` sessions, and
  `{:error, reason}` of `Snakepit.Bridge.Session.validate/1` for invalid options.
  """
  @spec create_session(String.t(), keyword()) ::
          {:ok, Session.t()} | {:error, :session_quota_exceeded | atom()} | invalid_id()
  def create_session(session_id, opts \\ []), do: create_session(__MODULE__, session_id, opts)

  @doc "`create_session/2` on the store `server`."
  @spec create_session(server(), String.t(), keyword()) ::
          {:ok, Session.t()} | {:error, :session_quota_exceeded | atom()} | invalid_id()
  def create_session(server, session_id, opts) do
    unless Keyword.keyword?(opts),
      do: raise(ArgumentError, "session options must be a keyword list, got: #{inspect(opts)}")

    with :ok <- check_id(session_id),
         do: GenServer.call(server, {:create_session, session_id, opts})
  end

  @doc """
  `{:ok, session}`, renewing its TTL, or `{:error, :not_found}` (also for an expired session).

  In the application's store (`server` left out) the session's `last_worker_id` is the worker
  a running pool has the session bound to (`Snakepit.execute_in_session/4`), as upstream's
  pools record it; a session bound in a pool but not in the store yet is created then, as
  upstream's `execute_in_session/4` creates it. The request path itself never writes here.
  """
  @spec get_session(server(), String.t()) ::
          {:ok, Session.t()} | {:error, :not_found} | invalid_id()
  def get_session(server \\ __MODULE__, session_id) do
    with :ok <- check_id(session_id) do
      result = read_session(server, session_id)
      if server == __MODULE__, do: with_pool_worker(result, session_id), else: result
    end
  end

  defp read_session(server, session_id) do
    store = store(server)
    now = now(store.clock)

    case lookup(store, session_id, now) do
      {:ok, %Session{last_accessed: last} = session} when last < now ->
        # Renewed in the owner; the owner handles this before any later call of this
        # process, so a cleanup this process asks for next sees the renewal.
        GenServer.cast(store.server, {:touch, session_id, now})
        {:ok, %{session | last_accessed: now}}

      result ->
        result
    end
  end

  # The session's worker as the pools know it (their affinity binding), recorded here when it
  # differs from what the store holds.
  defp with_pool_worker(result, session_id) do
    case {result, pool_worker(session_id)} do
      {result, nil} ->
        result

      {{:ok, %Session{last_worker_id: worker_id}}, worker_id} ->
        result

      {_result, worker_id} ->
        case store_worker_session(__MODULE__, session_id, worker_id) do
          :ok -> read_session(__MODULE__, session_id)
          {:error, _quota} -> result
        end
    end
  end

  defp pool_worker(session_id) do
    Enum.find_value(Snakepit.Pool.Registry.pools(), fn pool ->
      case Snakepit.Pool.session_info(pool, session_id) do
        %{worker_id: worker_id} when is_binary(worker_id) -> worker_id
        _ -> nil
      end
    end)
  rescue
    # A pool stopping between the listing and the lookup.
    Snakepit.Error -> nil
  end

  @doc """
  Replaces the session with `update_fn.(session)`, atomically, renewing its TTL:
  `{:ok, updated_session}`, `{:error, :not_found}`, `{:error, {:update_failed, _}}` when
  `update_fn` raises, throws or exits (the session is then unchanged), or `{:error, reason}`
  when its result is not a valid session with the same id.

  `update_fn` runs in the store's process, once; it must not call the store's write
  functions (those calls fail as `{:update_failed, {:exit, _}}`).
  """
  @spec update_session(server(), String.t(), (Session.t() -> Session.t())) ::
          {:ok, Session.t()} | {:error, term()}
  def update_session(server \\ __MODULE__, session_id, update_fn) do
    unless is_function(update_fn, 1),
      do:
        raise(
          ArgumentError,
          "update_fn must be a function of one argument, got: #{inspect(update_fn)}"
        )

    with :ok <- check_id(session_id),
         do: GenServer.call(server, {:update_session, session_id, update_fn})
  end

  @doc """
  Deletes the session; `:ok` whether or not it existed. Subscribers learn it with reason
  `:deleted`.
  """
  @spec delete_session(server(), String.t()) :: :ok | invalid_id()
  def delete_session(server \\ __MODULE__, session_id) do
    with :ok <- check_id(session_id), do: GenServer.call(server, {:delete_session, session_id})
  end

  @doc "Whether the session exists and has not expired (does not renew it)."
  @spec session_exists?(server(), String.t()) :: boolean()
  def session_exists?(server \\ __MODULE__, session_id) do
    case check_id(session_id) do
      :ok ->
        store = store(server)
        match?({:ok, _}, lookup(store, session_id, now(store.clock)))

      {:error, _} ->
        false
    end
  end

  @doc "The ids of the sessions that have not expired, in no order."
  @spec list_sessions(server()) :: [String.t()]
  def list_sessions(server \\ __MODULE__) do
    store = store(server)
    now = now(store.clock)

    read(store, fn ->
      :ets.select(store.table, [{{:"$1", :"$2", :_}, [{:>=, :"$2", now}], [:"$1"]}])
    end)
  end

  @doc """
  Removes the expired sessions and global programs now; returns the number of sessions
  removed. Subscribers learn each with reason `:expired`.
  """
  @spec cleanup_expired_sessions(server()) :: non_neg_integer()
  def cleanup_expired_sessions(server \\ __MODULE__),
    do: GenServer.call(server, :cleanup_expired_sessions)

  @doc """
  Upstream's statistics: `sessions_created`, `sessions_deleted`, `sessions_expired`,
  `cleanup_runs`, `global_programs_stored`, `global_programs_deleted`,
  `global_programs_expired` (counts since the store started), `current_sessions` (sessions in
  the table, including expired ones no cleanup has removed yet, as upstream),
  `memory_usage_bytes` (the table's) and `table_info` (`:ets.info/1`).
  """
  @spec get_stats(server()) :: map()
  def get_stats(server \\ __MODULE__), do: GenServer.call(server, :get_stats)

  @doc """
  Records `worker_id` (a string, or `nil`) as the session's `last_worker_id`, creating the
  session if it does not exist (upstream's affinity record; snakepit_rs's own affinity lives
  in the pool). `:ok`, `{:error, :invalid_last_worker_id}` or
  `{:error, :session_quota_exceeded}`.
  """
  @spec store_worker_session(server(), String.t(), String.t() | nil) ::
          :ok | {:error, atom()} | invalid_id()
  def store_worker_session(server \\ __MODULE__, session_id, worker_id) do
    with :ok <- check_id(session_id),
         do: GenServer.call(server, {:store_worker_session, session_id, worker_id})
  end

  ## Session end

  @doc """
  Subscribes `pid` (the caller by default) to session ends: it receives
  `{:snakepit_session_ended, session_id, :deleted | :expired}` for each session that ends
  from now on (once, however often it subscribed). The application's store ends its sessions
  on every running pool itself, before `delete_session/1` or the cleanup returns; subscribe a
  pool (its pid) to another store to have that store's sessions end on the pool's workers
  too.
  """
  @spec subscribe(server(), pid()) :: :ok
  def subscribe(server \\ __MODULE__, pid \\ self()) when is_pid(pid),
    do: GenServer.call(server, {:subscribe, pid})

  @doc "Ends the caller's subscription."
  @spec unsubscribe(server()) :: :ok
  def unsubscribe(server \\ __MODULE__), do: GenServer.call(server, {:unsubscribe, self()})

  ## Programs of a session

  @doc """
  Stores `program_data` under `program_id` in the session (replacing any): `:ok` or
  `{:error, :not_found}`.
  """
  @spec store_program(server(), String.t(), String.t(), term()) ::
          :ok | {:error, term()}
  def store_program(server \\ __MODULE__, session_id, program_id, program_data) do
    check_program_id!(program_id)

    case update_session(server, session_id, &Session.put_program(&1, program_id, program_data)) do
      {:ok, _session} -> :ok
      error -> error
    end
  end

  @doc "The same as `store_program/3` (upstream's `update_program/3` replaces the program)."
  @spec update_program(server(), String.t(), String.t(), term()) ::
          :ok | {:error, term()}
  def update_program(server \\ __MODULE__, session_id, program_id, program_data),
    do: store_program(server, session_id, program_id, program_data)

  @doc """
  `{:ok, program_data}`, renewing the session, or `{:error, :not_found}` when the session or
  the program does not exist.
  """
  @spec get_program(server(), String.t(), String.t()) ::
          {:ok, term()} | {:error, :not_found} | invalid_id()
  def get_program(server \\ __MODULE__, session_id, program_id) do
    check_program_id!(program_id)

    with {:ok, session} <- get_session(server, session_id),
         do: Session.get_program(session, program_id)
  end

  ## Global programs

  @doc """
  Stores a program any session and worker can read, for `:global_program_ttl` seconds
  (replacing any under that id). `:ok`.
  """
  @spec store_global_program(server(), String.t(), term()) :: :ok
  def store_global_program(server \\ __MODULE__, program_id, program_data) do
    check_program_id!(program_id)
    GenServer.call(server, {:store_global_program, program_id, program_data})
  end

  @doc "`{:ok, program_data}` or `{:error, :not_found}` (also once it has expired)."
  @spec get_global_program(server(), String.t()) :: {:ok, term()} | {:error, :not_found}
  def get_global_program(server \\ __MODULE__, program_id) do
    check_program_id!(program_id)
    store = store(server)
    now = now(store.clock)

    case read(store, fn -> :ets.lookup(store.programs, program_id) end) do
      [{^program_id, data, stored_at}] when stored_at + store.global_program_ttl >= now ->
        {:ok, data}

      _ ->
        {:error, :not_found}
    end
  end

  @doc "Deletes a global program; `:ok` whether or not it existed."
  @spec delete_global_program(server(), String.t()) :: :ok
  def delete_global_program(server \\ __MODULE__, program_id) do
    check_program_id!(program_id)
    GenServer.call(server, {:delete_global_program, program_id})
  end

  ## The owner

  @impl true
  def init(config) do
    programs_table = :"#{config.table_name}_global_programs"

    case Enum.find([config.table_name, programs_table], &(:ets.whereis(&1) != :undefined)) do
      nil ->
        # Callers of this node find the tables (and the clock) without a call to the owner.
        Process.flag(:trap_exit, true)
        table = new_table(config.table_name)
        programs = new_table(programs_table)
        store = %{server: config.name || self(), node: node(), table: table, programs: programs}
        store = Map.merge(store, Map.take(config, [:clock, :global_program_ttl]))
        if config.name, do: :persistent_term.put({__MODULE__, config.name}, store)

        state =
          config
          |> Map.merge(%{store: store, subscribers: %{}, stats: initial_stats()})
          |> Map.put(:cleanup_timer_ref, schedule_cleanup(config.cleanup_interval))

        {:ok, state}

      taken ->
        {:stop, {:table_exists, taken}}
    end
  end

  @impl true
  def handle_call({:create_session, session_id, opts}, _from, state) do
    opts = opts |> Keyword.put_new(:ttl, state.default_ttl) |> Keyword.put(:now, now(state))
    session = Session.new(session_id, opts)
    {reply, state} = create(state, session_id, session, fn existing -> {:ok, existing} end)
    {:reply, reply, state}
  end

  def handle_call({:update_session, session_id, update_fn}, _from, state) do
    now = now(state)

    case lookup(state.store, session_id, now) do
      {:ok, session} -> {:reply, apply_update(state, session, update_fn, now), state}
      error -> {:reply, error, state}
    end
  end

  def handle_call({:delete_session, session_id}, _from, state) do
    case :ets.take(state.store.table, session_id) do
      [] ->
        {:reply, :ok, state}

      [_record] ->
        notify(state, session_id, :deleted)
        {:reply, :ok, count(state, :sessions_deleted, 1)}
    end
  end

  def handle_call({:store_worker_session, session_id, worker_id}, _from, state) do
    now = now(state)
    session = Session.new(session_id, ttl: state.default_ttl, now: now, last_worker_id: worker_id)

    {reply, state} =
      create(state, session_id, session, fn existing ->
        apply_update(state, existing, &%{&1 | last_worker_id: worker_id}, now)
      end)

    {:reply, with({:ok, _} <- reply, do: :ok), state}
  end

  def handle_call(:cleanup_expired_sessions, _from, state) do
    {removed, state} = cleanup(state)
    {:reply, removed, state}
  end

  def handle_call(:get_stats, _from, state) do
    table = state.store.table

    stats =
      Map.merge(state.stats, %{
        current_sessions: :ets.info(table, :size),
        memory_usage_bytes: :ets.info(table, :memory) * :erlang.system_info(:wordsize),
        table_info: :ets.info(table)
      })

    {:reply, stats, state}
  end

  def handle_call({:subscribe, pid}, _from, state) do
    if Map.has_key?(state.subscribers, pid) do
      {:reply, :ok, state}
    else
      {:reply, :ok, put_in(state.subscribers[pid], Process.monitor(pid))}
    end
  end

  def handle_call({:unsubscribe, pid}, _from, state) do
    {ref, subscribers} = Map.pop(state.subscribers, pid)
    if ref, do: Process.demonitor(ref, [:flush])
    {:reply, :ok, %{state | subscribers: subscribers}}
  end

  def handle_call({:store_global_program, program_id, data}, _from, state) do
    :ets.insert(state.store.programs, {program_id, data, now(state)})
    {:reply, :ok, count(state, :global_programs_stored, 1)}
  end

  def handle_call({:delete_global_program, program_id}, _from, state) do
    deleted = length(:ets.take(state.store.programs, program_id))
    {:reply, :ok, count(state, :global_programs_deleted, deleted)}
  end

  def handle_call(:store, _from, state), do: {:reply, state.store, state}

  @impl true
  def handle_cast({:touch, session_id, now}, state) do
    case :ets.lookup(state.store.table, session_id) do
      # Only a live session: a cleanup may have removed or a later write renewed it meanwhile.
      [{_id, deadline, %Session{last_accessed: last} = session}]
      when deadline >= now and last < now ->
        insert(state, Session.touch(session, now))

      _ ->
        :ok
    end

    {:noreply, state}
  end

  @impl true
  def handle_info(:cleanup_expired_sessions, state) do
    {_removed, state} = cleanup(state)
    warn_accumulation(state)
    {:noreply, %{state | cleanup_timer_ref: schedule_cleanup(state.cleanup_interval)}}
  end

  def handle_info({:DOWN, _ref, :process, pid, _reason}, state) do
    {:noreply, %{state | subscribers: Map.delete(state.subscribers, pid)}}
  end

  # Exits of linked processes other than the parent (which gen_server handles itself).
  def handle_info({:EXIT, _pid, _reason}, state), do: {:noreply, state}

  def handle_info(message, state) do
    Logger.debug("#{inspect(__MODULE__)} ignored an unexpected message: #{inspect(message)}")
    {:noreply, state}
  end

  @impl true
  def terminate(_reason, state) do
    if ref = Map.get(state, :cleanup_timer_ref), do: Process.cancel_timer(ref)
    if name = Map.get(state, :name), do: :persistent_term.erase({__MODULE__, name})
    :ok
  end

  ## Internals: the owner's writes

  # A record is `{session_id, deadline, session}`, `deadline = last_accessed + ttl`: the
  # session lives while `deadline >= now`, one comparison for a read and for `select_delete`.
  defp insert(state, %Session{} = session) do
    :ets.insert(state.store.table, {session.id, session.last_accessed + session.ttl, session})
  end

  # Creates `session` unless `session_id` names a live session, in which case `on_existing`
  # decides the reply. An expired record still in the table ends (as `:expired`) first.
  defp create(state, session_id, session, on_existing) do
    case lookup(state.store, session_id, session.created_at) do
      {:ok, existing} ->
        {on_existing.(existing), state}

      {:error, :not_found} ->
        state = expire(state, session_id)

        with :ok <- Session.validate(session),
             {:ok, state} <- make_room(state) do
          insert(state, session)
          created = %{system_time: System.system_time()}
          Snakepit.Telemetry.execute(@created, created, %{session_id: session_id})
          {{:ok, session}, count(state, :sessions_created, 1)}
        else
          {:error, reason} -> {{:error, reason}, state}
        end
    end
  end

  defp expire(state, session_id) do
    case :ets.take(state.store.table, session_id) do
      [] ->
        state

      [_record] ->
        notify(state, session_id, :expired)
        count(state, :sessions_expired, 1)
    end
  end

  # The quota, after a cleanup when it is reached: an expired session holds no place.
  defp make_room(%{max_sessions: :infinity} = state), do: {:ok, state}

  defp make_room(state) do
    state = if full?(state), do: elem(cleanup(state), 1), else: state
    if full?(state), do: {:error, :session_quota_exceeded}, else: {:ok, state}
  end

  defp full?(state), do: :ets.info(state.store.table, :size) >= state.max_sessions

  defp apply_update(state, session, update_fn, now) do
    try do
      update_fn.(session)
    rescue
      exception -> {:error, {:update_failed, exception}}
    catch
      kind, reason -> {:error, {:update_failed, {kind, reason}}}
    else
      %Session{id: id} = updated when id == session.id ->
        with :ok <- Session.validate(updated) do
          updated = Session.touch(updated, now)
          insert(state, updated)
          {:ok, updated}
        end

      %Session{} ->
        {:error, :invalid_id}

      other ->
        Session.validate(other)
    end
  end

  defp cleanup(state) do
    now = now(state)
    %{table: table, programs: programs} = state.store
    # The owner is the only writer, so the ids selected are exactly those select_delete removes.
    ended = :ets.select(table, [{{:"$1", :"$2", :_}, [{:<, :"$2", now}], [:"$1"]}])
    removed = :ets.select_delete(table, [{{:_, :"$1", :_}, [{:<, :"$1", now}], [true]}])
    oldest = now - state.global_program_ttl

    programs_removed =
      :ets.select_delete(programs, [{{:_, :_, :"$1"}, [{:<, :"$1", oldest}], [true]}])

    Enum.each(ended, &notify(state, &1, :expired))

    state =
      state
      |> count(:sessions_expired, removed)
      |> count(:global_programs_expired, programs_removed)
      |> count(:cleanup_runs, 1)

    {removed, state}
  end

  # Every end goes through here: subscribers hear of it, and an expiry is a telemetry event.
  defp notify(state, session_id, reason) do
    # The application's store ends the session on every running pool (its worker binding and
    # the state its workers keep) before its own caller gets an answer, so that nothing reads
    # or runs against a session that is gone. Other stores reach pools that subscribe.
    if state.store.server == __MODULE__ do
      for pool <- Snakepit.Pool.Registry.pools(), do: Snakepit.Pool.end_session(pool, session_id)
    end

    for {pid, _ref} <- state.subscribers,
        do: send(pid, {:snakepit_session_ended, session_id, reason})

    if reason == :expired,
      do: Snakepit.Telemetry.execute(@expired, %{count: 1}, %{session_id: session_id})

    :ok
  end

  defp count(state, key, n), do: %{state | stats: Map.update!(state.stats, key, &(&1 + n))}

  defp initial_stats do
    Map.new(
      [:sessions_created, :sessions_deleted, :sessions_expired, :cleanup_runs] ++
        [:global_programs_stored, :global_programs_deleted, :global_programs_expired],
      &{&1, 0}
    )
  end

  defp warn_accumulation(%{strict_mode: true, max_sessions: max} = state) when max != :infinity do
    size = :ets.info(state.store.table, :size)

    if size >= max * @warning_threshold do
      Logger.warning(
        "#{inspect(__MODULE__)}: #{size} sessions held, max_sessions is #{max}; " <>
          "sessions that are never deleted expire only after their TTL"
      )
    end
  end

  defp warn_accumulation(_state), do: :ok

  defp schedule_cleanup(:infinity), do: nil
  defp schedule_cleanup(ms), do: Process.send_after(self(), :cleanup_expired_sessions, ms)

  defp new_table(name) do
    :ets.new(name, [
      :set,
      :protected,
      :named_table,
      read_concurrency: true,
      write_concurrency: true,
      decentralized_counters: true
    ])
  end

  ## Internals: reads in the caller

  # What a caller needs to read a store: its tables, clock and owner. A registered store
  # publishes it in `:persistent_term` (no call); any other is asked once per read.
  defp store(server) do
    store =
      case :persistent_term.get({__MODULE__, server}, nil) do
        nil -> GenServer.call(server, :store)
        store -> store
      end

    if store.node != node() do
      raise ArgumentError,
            "the session store must run on this node (#{node()}), got: #{inspect(server)}"
    end

    store
  end

  defp lookup(store, session_id, now) do
    case read(store, fn -> :ets.lookup(store.table, session_id) end) do
      [{_id, deadline, session}] when deadline >= now -> {:ok, session}
      _ -> {:error, :not_found}
    end
  end

  # The table disappears with its owner: the caller exits as a call to a stopped store would.
  defp read(store, fun) do
    fun.()
  rescue
    ArgumentError -> exit({:noproc, {__MODULE__, :read, [store.server]}})
  end

  defp now(%{clock: clock}), do: now(clock)
  defp now(clock) when is_function(clock, 0), do: clock.()
  defp now({module, function, args}), do: apply(module, function, args)

  ## Internals: arguments

  defp check_id(session_id) when is_binary(session_id), do: SessionId.validate(session_id)

  defp check_id(session_id),
    do: raise(ArgumentError, "a session id must be a string, got: #{inspect(session_id)}")

  defp check_program_id!(program_id) when is_binary(program_id), do: :ok

  defp check_program_id!(program_id),
    do: raise(ArgumentError, "a program id must be a string, got: #{inspect(program_id)}")

  defp config!(opts) do
    unless Keyword.keyword?(opts) do
      raise ArgumentError, "session store options must be a keyword list, got: #{inspect(opts)}"
    end

    opts = Keyword.validate!(opts, @options)

    defaults =
      Keyword.merge(app_env(),
        name: __MODULE__,
        table_name: default_table(opts),
        global_program_ttl: 3600,
        clock: {System, :monotonic_time, [:second]}
      )

    for key <- @options, into: %{} do
      value = Keyword.get(opts, key, defaults[key])

      if expected = invalid(key, value) do
        raise ArgumentError,
              "session store option #{inspect(key)} must be #{expected}, got: #{inspect(value)}"
      end

      {key, value}
    end
  end

  # The application's store keeps upstream's table name; another registered under an atom
  # takes that atom (a table and a process have separate namespaces); any other, a new one.
  defp default_table(opts) do
    case Keyword.get(opts, :name, __MODULE__) do
      __MODULE__ -> @default_table
      name when is_atom(name) and name != nil -> name
      _other -> :"#{@default_table}_#{System.unique_integer([:positive])}"
    end
  end

  # What an invalid option should have been, or nil.
  defp invalid(:table_name, value) when not is_atom(value), do: "an atom"

  defp invalid(key, value)
       when key in [:default_ttl, :global_program_ttl] and not (is_integer(value) and value >= 0),
       do: "a non-negative integer"

  defp invalid(key, value)
       when key in [:cleanup_interval, :max_sessions] and value != :infinity and
              not (is_integer(value) and value > 0),
       do: "a positive integer or :infinity"

  defp invalid(:strict_mode, value) when not is_boolean(value), do: "a boolean"

  defp invalid(:clock, clock) when is_function(clock, 0), do: nil
  defp invalid(:clock, {m, f, a}) when is_atom(m) and is_atom(f) and is_list(a), do: nil
  defp invalid(:clock, _clock), do: "a function of no arguments or {module, function, args}"
  defp invalid(_key, _value), do: nil

  # Upstream's keys: `session_store: [...]` (its guide) wins over the `session_*` keys.
  defp app_env do
    section =
      case Application.get_env(:snakepit, :session_store, []) do
        section when is_map(section) ->
          Map.to_list(section)

        section when is_list(section) ->
          section

        other ->
          raise ArgumentError,
                "config :snakepit, session_store: must be a keyword list or map, got: #{inspect(other)}"
      end

    defaults = [
      default_ttl: Application.get_env(:snakepit, :session_default_ttl, 3600),
      cleanup_interval: Application.get_env(:snakepit, :session_cleanup_interval, 60_000),
      max_sessions: Application.get_env(:snakepit, :session_max_sessions, 10_000),
      strict_mode: false
    ]

    Keyword.merge(defaults, Keyword.take(section, Keyword.keys(defaults)))
  end
end
