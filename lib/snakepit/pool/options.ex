defmodule Snakepit.Pool.Options do
  @moduledoc """
  The options of a pool (`Snakepit.Pool.start_link/1`) and of a call (`Snakepit.execute/3`).

  Each is described once, in a schema of name, type, default and doc; validation and the option
  lists in `Snakepit.Pool`'s and `Snakepit.execute/3`'s docs are both made from it, so they
  cannot drift. A bad pool option raises `ArgumentError` (starting a pool wrongly configured is
  a programming error); a bad call option is returned as `:invalid_option` (calls never raise).
  """

  alias Snakepit.Error

  # Upstream's rule for session ids: `^[A-Za-z0-9_-]+$`, bounded.

  @typedoc "A type of the schema; `describe/1` says it in words."
  @type type ::
          :atom
          | :pos_integer
          | :ms
          | :timeout
          | :ttl
          | :count
          | :string
          | :strings
          | :env
          | :adapter
          | :pid
          | :pool
          | :session_id
          | :affinity
          | {:or_nil, type()}

  @pool_schema [
    name: [type: :atom, default: Snakepit.Pool, doc: "name to register and to pass as `:pool`"],
    size: [
      type: :pos_integer,
      default: nil,
      default_doc: "`System.schedulers_online() * 2`",
      doc: "number of workers"
    ],
    adapter_module: [
      type: :adapter,
      default: Snakepit.Adapters.Python,
      doc: "how workers are launched"
    ],
    adapter_args: [type: :strings, default: [], doc: "arguments given to the worker program"],
    python_executable: [
      type: {:or_nil, :string},
      default: nil,
      default_doc: "`$SNAKEPIT_PYTHON`, else `python3`",
      doc: "interpreter for `Snakepit.Adapters.Python`"
    ],
    env: [type: :env, default: [], doc: "extra environment of workers"],
    cwd: [
      type: {:or_nil, :string},
      default: nil,
      default_doc: "the BEAM's",
      doc: "working directory of workers"
    ],
    queue_timeout: [type: :ms, default: 5_000, doc: "ms a request may wait for a free worker"],
    max_queue_size: [
      type: :pos_integer,
      default: 1_000,
      doc: "requests allowed to wait; more get `:pool_saturated`"
    ],
    startup_timeout: [
      type: :ms,
      default: 10_000,
      doc:
        "ms a worker may take to start; also bounds what the pool does before starting " <>
          "workers (e.g. asking the Python interpreter for its real path)"
    ],
    timeout: [
      type: :timeout,
      default: 30_000,
      doc: "default execution timeout of a request in ms (`:infinity`: none)"
    ],
    max_frame_size: [
      type: :pos_integer,
      default: 16 * 1024 * 1024,
      default_doc: "16 MiB",
      doc: "largest request or reply in bytes"
    ],
    shutdown_grace: [
      type: :ms,
      default: 2_000,
      doc: "ms between SIGTERM and SIGKILL when stopping"
    ],
    cancel_grace: [
      type: :ms,
      default: 2_000,
      doc:
        "ms a worker has to answer after its request timed out (it is sent a cancel frame) " <>
          "before it is killed and replaced"
    ],
    health_check_interval: [
      type: {:or_nil, :ms},
      default: 30_000,
      doc:
        "ms between health checks of an idle worker (a heartbeat frame, or `ping` for " <>
          "workers that do not announce heartbeats); one that fails or does not answer within " <>
          "`:health_check_timeout` is replaced; `nil` turns health checks off"
    ],
    health_check_timeout: [type: :ms, default: 5_000, doc: "ms a health check may take"],
    worker_max_requests: [
      type: {:or_nil, :count},
      default: nil,
      default_doc: "`nil`: never",
      doc: "recycle a worker after this many requests; `:infinity` is `nil`"
    ],
    worker_ttl: [
      type: {:or_nil, :ttl},
      default: nil,
      default_doc: "`nil`: never",
      doc:
        "recycle a worker after this many ms, or `{n, :seconds | :minutes | :hours}`; " <>
          "`:infinity` is `nil`. A recycled worker's replacement starts first; the old one " <>
          "finishes its request and exits"
    ],
    max_start_failures: [
      type: :pos_integer,
      default: 5,
      doc:
        "consecutive failed worker starts after which the circuit opens: while no worker " <>
          "runs, requests then fail at once with `:circuit_open` instead of waiting. The pool " <>
          "keeps retrying starts with back-off (100 ms doubling, up to 5 s) either way"
    ],
    affinity: [
      type: :affinity,
      default: :hint,
      doc:
        "session affinity of a request with a `:session_id` that does not choose its own: " <>
          "`:hint`, `:strict_queue` or `:strict_fail_fast` (see `Snakepit.execute_in_session/4`); " <>
          "upstream's strings (`\"hint\"`, any case) are taken too"
    ],
    session_ttl: [
      type: {:or_nil, :ttl},
      default: 3_600_000,
      default_doc: "1 hour, as the session store's",
      doc:
        "ms (or `{n, :seconds | :minutes | :hours}`) after which a session unused that long " <>
          "is no longer bound to its worker, and (within another such period) the workers drop " <>
          "what they kept for it (`session_state`); `nil` or `:infinity`: never"
    ],
    stream_window: [
      type: :pos_integer,
      default: 64,
      doc:
        "credit window of streams (see `Snakepit.execute_stream/4`): chunks a worker may " <>
          "send beyond those the consumer took, so at most this many wait in the caller's " <>
          "mailbox. Workers that do not announce `credit` stream without a window"
    ],
    stream_timeout: [
      type: :timeout,
      default: 300_000,
      doc:
        "default timeout of a whole stream in ms, from when a worker starts it " <>
          "(upstream's streaming default, 5 minutes); `:infinity`: none"
    ],
    chunk_timeout: [
      type: {:or_nil, :ms},
      default: nil,
      default_doc: "`nil`: none",
      doc:
        "default longest wait in ms for a stream's next chunk (or its end) while its worker " <>
          "may send; the clock stops while the worker waits for the consumer"
    ],
    event_listener: [
      type: {:or_nil, :pid},
      default: nil,
      doc:
        "a process that receives `{:snakepit_pool_event, name, event}` for every life-cycle " <>
          "event the pool's process handles (see `Snakepit.Pool`); meant for tests, which " <>
          "can then wait for events instead of polling"
    ]
  ]

  @call_schema [
    pool: [type: :pool, default: Snakepit.Pool, doc: "the pool's name or process"],
    pool_name: [
      type: {:or_nil, :atom},
      default: nil,
      doc:
        "upstream Snakepit's way to choose a pool, by the `name` of its entry in " <>
          "`config :snakepit, pools: [...]`; it wins over `:pool`. The default pool's name " <>
          "(the first entry's, or `:default`) selects `Snakepit.Pool` (see `Snakepit.Config`)"
    ],
    timeout: [
      type: :timeout,
      default: nil,
      default_doc: "the pool's `:timeout`",
      doc:
        "ms the command may run once on a worker. Waiting for a free worker is bounded " <>
          "separately by the pool's `:queue_timeout`"
    ],
    session_id: [
      type: {:or_nil, :session_id},
      default: nil,
      doc:
        "the session the request belongs to: its requests go to the worker that served it " <>
          "before, as `:affinity` says (see `Snakepit.execute_in_session/4`); the worker sees " <>
          "it (`self.session_id` in Python). An invalid one is `:invalid_session_id`"
    ],
    chunk_timeout: [
      type: {:or_nil, :ms},
      default: nil,
      default_doc: "the pool's `:chunk_timeout`",
      doc:
        "streams only: the longest wait in ms for the next chunk (or the end) while the " <>
          "worker may send; past it the stream is cancelled and fails with `:timeout`"
    ],
    affinity: [
      type: {:or_nil, :affinity},
      default: nil,
      default_doc: "the pool's `:affinity`",
      doc:
        "how strictly this request of a session keeps to the session's worker: `:hint`, " <>
          "`:strict_queue` or `:strict_fail_fast` (see `Snakepit.execute_in_session/4`)"
    ]
  ]

  @pool_names Keyword.keys(@pool_schema)
  @call_names Keyword.keys(@call_schema)
  @pool_defaults for {name, spec} <- @pool_schema, do: {name, spec[:default]}

  @doc "The names of the pool options."
  @spec names() :: [atom()]
  def names, do: @pool_names

  @doc """
  Validates pool options and fills in defaults. Raises `ArgumentError` naming the first unknown
  or invalid option and the value it got.
  """
  @spec validate!(keyword()) :: keyword()
  def validate!(opts) when is_list(opts) do
    Enum.each(opts, fn
      {name, _} when name in @pool_names -> :ok
      {name, value} -> raise ArgumentError, unknown(name, value, @pool_names)
      other -> raise ArgumentError, "expected a keyword list of options, got: #{inspect(other)}"
    end)

    opts =
      @pool_defaults
      |> Keyword.merge(opts)
      |> Keyword.update!(:size, &(&1 || System.schedulers_online() * 2))

    opts =
      for {name, value} <- opts do
        type = @pool_schema[name][:type]
        unless valid?(type, value), do: raise(ArgumentError, invalid(name, type, value))
        {name, normalize(type, value)}
      end

    Keyword.update!(opts, :env, &Enum.to_list/1)
  end

  def validate!(opts),
    do: raise(ArgumentError, "expected a keyword list of options, got: #{inspect(opts)}")

  @doc """
  Checks one pool option's value and returns it normalized (as `validate!/1` would); raises
  `ArgumentError` naming `label` (e.g. the configuration key it came from) and the value.
  """
  @spec check!(atom(), term(), String.t()) :: term()
  def check!(name, value, label) do
    type = Keyword.fetch!(@pool_schema, name)[:type]

    if valid?(type, value),
      do: normalize(type, value),
      else:
        raise(
          ArgumentError,
          "invalid value for #{label}: expected #{describe(type)}, " <>
            "got: #{inspect(value)}"
        )
  end

  @doc """
  The pool a call's options select: `:pool_name` (resolved by `Snakepit.Config.pool/1`), else
  `:pool`, else `Snakepit.Pool`.
  """
  @spec call_pool(keyword()) :: term()
  def call_pool(opts) do
    case Keyword.get(opts, :pool_name) do
      nil -> Keyword.get(opts, :pool, Snakepit.Pool)
      name -> Snakepit.Config.pool(name)
    end
  end

  @doc """
  Checks a call's options: `:ok`, or `{:error, %Snakepit.Error{reason: :invalid_option}}` naming
  the first unknown or invalid one. On the request path: one pattern match per option.
  """
  @spec validate_call(keyword()) :: :ok | {:error, Error.t()}
  def validate_call(opts) when is_list(opts), do: check_call(opts)
  def validate_call(opts), do: {:error, not_a_keyword_list(opts)}

  defp check_call([]), do: :ok

  defp check_call([{:session_id, nil} | rest]), do: check_call(rest)

  defp check_call([{:session_id, value} | rest]) do
    with :ok <- Snakepit.SessionId.validate(value), do: check_call(rest)
  end

  # One clause per call option, made from the schema.
  for {name, spec} <- @call_schema, name != :session_id do
    type = Macro.escape(spec[:type])

    defp check_call([{unquote(name), value} | rest]) do
      if valid?(unquote(type), value),
        do: check_call(rest),
        else:
          {:error, invalid_option(unquote(name), invalid(unquote(name), unquote(type), value))}
    end
  end

  defp check_call([{name, value} | _]) when is_atom(name),
    do: {:error, invalid_option(name, unknown(name, value, @call_names))}

  defp check_call(opts), do: {:error, not_a_keyword_list(opts)}

  defp not_a_keyword_list(opts),
    do: invalid_option(nil, "call options must be a keyword list, got: #{inspect(opts)}")

  @doc """
  The options of a schema (`:pool` or `:call`) as a Markdown list: name, type, default and doc.
  """
  @spec docs(:pool | :call) :: String.t()
  def docs(:pool), do: render(@pool_schema)
  def docs(:call), do: render(@call_schema)

  defp render(schema) do
    Enum.map_join(schema, "\n", fn {name, spec} ->
      default = spec[:default_doc] || "`#{inspect(spec[:default])}`"
      "  * `#{inspect(name)}` (#{describe(spec[:type])}) - #{spec[:doc]}. Default: #{default}."
    end)
  end

  @doc """
  The options of a schema (`:pool` or `:call`) as a Markdown table of name, type, default and
  description: the README's configuration table, which a test keeps equal to this.
  """
  @spec table(:pool | :call) :: String.t()
  def table(:pool), do: render_table(@pool_schema)
  def table(:call), do: render_table(@call_schema)

  defp render_table(schema) do
    rows =
      for {name, spec} <- schema do
        default = spec[:default_doc] || "`#{inspect(spec[:default])}`"
        cells = ["`#{inspect(name)}`", describe(spec[:type]), default, spec[:doc]]
        "| " <> Enum.map_join(cells, " | ", &String.replace(&1, "|", "\\|")) <> " |"
      end

    Enum.join(["| Option | Type | Default | Description |", "|---|---|---|---|" | rows], "\n")
  end

  @doc "A type in words, as error messages and the docs say it."
  @spec describe(type()) :: String.t()
  def describe(:atom), do: "an atom"
  def describe(:pos_integer), do: "a positive integer"
  def describe(:ms), do: "a positive integer of milliseconds"
  def describe(:timeout), do: "a positive integer of milliseconds or :infinity"

  def describe(:ttl),
    do: "a positive integer of milliseconds, {n, :seconds | :minutes | :hours} or :infinity"

  def describe(:count), do: "a positive integer or :infinity"
  def describe(:string), do: "a string"
  def describe(:strings), do: "a list of strings"
  def describe(:env), do: "a map or list of {name, value} strings"
  def describe(:adapter), do: "a module implementing Snakepit.Adapter, in any of its styles"
  def describe(:pid), do: "a pid"
  def describe(:pool), do: "a pool's name (an atom) or a pid"

  def describe(:session_id),
    do: "a string of 1 to #{Snakepit.SessionId.max_length()} letters, digits, `_` or `-`"

  def describe(:affinity), do: "`:hint`, `:strict_queue` or `:strict_fail_fast`"
  def describe({:or_nil, type}), do: "nil or #{describe(type)}"

  defp valid?(:atom, value), do: is_atom(value) and value != nil
  defp valid?(:pos_integer, value), do: is_integer(value) and value > 0
  defp valid?(:ms, value), do: is_integer(value) and value > 0
  defp valid?(:timeout, value), do: value == :infinity or (is_integer(value) and value > 0)
  defp valid?(:count, value), do: value == :infinity or (is_integer(value) and value > 0)

  defp valid?(:ttl, {n, unit}) when unit in [:seconds, :minutes, :hours],
    do: is_integer(n) and n > 0

  defp valid?(:ttl, value), do: valid?(:timeout, value)
  defp valid?(:string, value), do: is_binary(value)
  defp valid?(:strings, value), do: list_of?(value, &is_binary/1)
  defp valid?(:pid, value), do: is_pid(value)
  defp valid?(:pool, value), do: is_pid(value) or (is_atom(value) and value != nil)
  defp valid?(:session_id, value), do: Snakepit.SessionId.valid?(value)
  defp valid?(:affinity, value), do: affinity(value) != nil
  defp valid?({:or_nil, type}, value), do: is_nil(value) or valid?(type, value)

  defp valid?(:env, value) do
    pair? = &match?({name, value} when is_binary(name) and is_binary(value), &1)
    (is_map(value) and Enum.all?(value, pair?)) or list_of?(value, pair?)
  end

  defp valid?(:adapter, value), do: Snakepit.Adapter.style(value) != nil

  @doc """
  An affinity mode as an atom: the atoms themselves, or upstream's strings in any case
  (`"strict_queue"`); `nil` for anything else.
  """
  @spec affinity(term()) :: :hint | :strict_queue | :strict_fail_fast | nil
  def affinity(mode) when mode in [:hint, :strict_queue, :strict_fail_fast], do: mode

  def affinity(mode) when is_binary(mode) do
    case String.downcase(mode) do
      "hint" -> :hint
      "strict_queue" -> :strict_queue
      "strict_fail_fast" -> :strict_fail_fast
      _ -> nil
    end
  end

  def affinity(_mode), do: nil

  # What the pool keeps of a valid value: milliseconds, and `nil` for "never".
  @unit_ms %{seconds: 1_000, minutes: 60_000, hours: 3_600_000}
  defp normalize({:or_nil, _type}, nil), do: nil
  defp normalize({:or_nil, type}, value), do: normalize(type, value)
  defp normalize(type, :infinity) when type in [:ttl, :count], do: nil
  defp normalize(:affinity, mode), do: affinity(mode)
  defp normalize(:ttl, {n, unit}), do: n * Map.fetch!(@unit_ms, unit)
  defp normalize(_type, value), do: value

  defp list_of?([], _valid?), do: true
  defp list_of?([head | tail], valid?), do: valid?.(head) and list_of?(tail, valid?)
  defp list_of?(_, _valid?), do: false

  defp invalid(name, type, value),
    do:
      "invalid value for #{inspect(name)} option: expected #{describe(type)}, got: #{inspect(value)}"

  defp unknown(name, value, known) do
    "unknown option #{inspect(name)}, got: #{inspect(value)}; known options: " <>
      Enum.map_join(known, ", ", &inspect/1)
  end

  defp invalid_option(name, message), do: Error.new(:invalid_option, message, %{option: name})
end
