defmodule Snakepit.Bridge.Session do
  @moduledoc """
  A session as `Snakepit.Bridge.SessionStore` keeps it: upstream Snakepit's struct (v0.4.3 and
  v0.13 agree on these fields; v0.4.3's `variables` went away in v0.13 and are not here).

    * `:id` - the session id
    * `:programs` - program id => program data (`put_program/3`)
    * `:metadata` - anything the caller keeps with the session
    * `:created_at`, `:last_accessed` - times in the store's clock: monotonic seconds unless the
      store was given a `:clock`
    * `:last_worker_id` - the worker that last served the session, as upstream's
      `SessionStore.store_worker_session/2` records it, or `nil`
    * `:ttl` - seconds of inactivity after which the session expires; each access renews it
    * `:stats` - `%{program_count: n}`

  A session is expired when `last_accessed + ttl < now` (upstream's rule): a session with
  `ttl: 0` lives until the clock's next second.
  """

  @type t :: %__MODULE__{
          id: String.t(),
          programs: map(),
          metadata: map(),
          created_at: integer(),
          last_accessed: integer(),
          last_worker_id: String.t() | nil,
          ttl: non_neg_integer(),
          stats: map()
        }

  @enforce_keys [:id, :created_at, :ttl]
  defstruct [
    :id,
    :created_at,
    :last_accessed,
    :last_worker_id,
    :ttl,
    programs: %{},
    metadata: %{},
    stats: %{program_count: 0}
  ]

  @default_ttl 3600

  @doc """
  A new session. Options: `:ttl` (seconds, default `3600`), `:metadata` (default `%{}`),
  `:programs` (default `%{}`), `:last_worker_id` (default `nil`), and `:now`, the creation
  time (default: monotonic seconds now). The result is not validated: see `validate/1`.
  """
  @spec new(String.t(), keyword()) :: t()
  def new(id, opts \\ []) when is_binary(id) and is_list(opts) do
    now = Keyword.get_lazy(opts, :now, &monotonic_now/0)
    programs = Keyword.get(opts, :programs, %{})

    %__MODULE__{
      id: id,
      created_at: now,
      last_accessed: now,
      ttl: Keyword.get(opts, :ttl, @default_ttl),
      metadata: Keyword.get(opts, :metadata, %{}),
      programs: programs,
      last_worker_id: Keyword.get(opts, :last_worker_id),
      stats: %{program_count: if(is_map(programs), do: map_size(programs), else: 0)}
    }
  end

  @doc "The session accessed at `now` (default: monotonic seconds now); time never moves back."
  @spec touch(t(), integer() | nil) :: t()
  def touch(%__MODULE__{} = session, now \\ nil) do
    %{session | last_accessed: max(session.last_accessed, now || monotonic_now())}
  end

  @doc "Whether the session has expired at `now` (default: monotonic seconds now)."
  @spec expired?(t(), integer() | nil) :: boolean()
  def expired?(%__MODULE__{} = session, now \\ nil) do
    session.last_accessed + session.ttl < (now || monotonic_now())
  end

  @doc """
  `:ok`, or `{:error, reason}` naming the first invalid field, with upstream's reasons:
  `:invalid_id`, `:invalid_programs`, `:invalid_metadata`, `:invalid_created_at`,
  `:invalid_last_accessed`, `:invalid_ttl`, `:invalid_timestamps` (accessed before created),
  `:invalid_last_worker_id` (not a string or `nil`); `:not_a_session` for anything else.
  """
  @spec validate(term()) :: :ok | {:error, atom()}
  def validate(%__MODULE__{} = session) do
    checks = [
      {:invalid_id, is_binary(session.id) and session.id != ""},
      {:invalid_programs, is_map(session.programs)},
      {:invalid_metadata, is_map(session.metadata)},
      {:invalid_created_at, is_integer(session.created_at)},
      {:invalid_last_accessed, is_integer(session.last_accessed)},
      {:invalid_ttl, is_integer(session.ttl) and session.ttl >= 0},
      {:invalid_timestamps, session.last_accessed >= session.created_at},
      {:invalid_last_worker_id,
       is_binary(session.last_worker_id) or session.last_worker_id == nil}
    ]

    case Enum.find(checks, fn {_reason, ok?} -> not ok? end) do
      nil -> :ok
      {reason, false} -> {:error, reason}
    end
  end

  def validate(_other), do: {:error, :not_a_session}

  @doc "The session with `program_data` stored under `program_id` (counted once per id)."
  @spec put_program(t(), String.t(), term()) :: t()
  def put_program(%__MODULE__{} = session, program_id, program_data)
      when is_binary(program_id) do
    stats =
      if Map.has_key?(session.programs, program_id),
        do: session.stats,
        else: Map.update(session.stats, :program_count, 1, &(&1 + 1))

    %{session | programs: Map.put(session.programs, program_id, program_data), stats: stats}
  end

  @doc "`{:ok, program_data}` or `{:error, :not_found}`."
  @spec get_program(t(), String.t()) :: {:ok, term()} | {:error, :not_found}
  def get_program(%__MODULE__{} = session, program_id) when is_binary(program_id) do
    case Map.fetch(session.programs, program_id) do
      {:ok, program_data} -> {:ok, program_data}
      :error -> {:error, :not_found}
    end
  end

  @doc "The session without the program `program_id`."
  @spec delete_program(t(), String.t()) :: t()
  def delete_program(%__MODULE__{} = session, program_id) when is_binary(program_id) do
    %{session | programs: Map.delete(session.programs, program_id)}
  end

  @doc "The session with `value` under `key` in its metadata."
  @spec put_metadata(t(), term(), term()) :: t()
  def put_metadata(%__MODULE__{} = session, key, value) do
    %{session | metadata: Map.put(session.metadata, key, value)}
  end

  @doc "The metadata under `key`, or `default`."
  @spec get_metadata(t(), term(), term()) :: term()
  def get_metadata(%__MODULE__{} = session, key, default \\ nil) do
    Map.get(session.metadata, key, default)
  end

  @doc """
  The session's `stats` plus `age` and `time_since_access` (seconds at `now`, default: monotonic
  seconds now) and `total_items` (its program count), as upstream.
  """
  @spec get_stats(t(), integer() | nil) :: map()
  def get_stats(%__MODULE__{} = session, now \\ nil) do
    now = now || monotonic_now()
    program_count = Map.get(session.stats, :program_count, 0)

    Map.merge(session.stats, %{
      age: now - session.created_at,
      time_since_access: now - session.last_accessed,
      total_items: program_count
    })
  end

  defp monotonic_now, do: System.monotonic_time(:second)
end
