defmodule Snakepit.Telemetry do
  @moduledoc """
  The `:telemetry` events snakepit_rs emits, with their measurements and metadata.

  Events go through `:telemetry` when it is loaded at run time (your application depends on
  `:telemetry`, as Phoenix and Ecto applications do); snakepit_rs itself has no Hex dependency.
  Whether it is loaded is checked once and kept in `:persistent_term`. Without it nothing is
  emitted, and a request costs what it did before telemetry existed: its reply carries no
  timings and no event is built. With it loaded, a request is timed only while a handler is
  attached to one of its events (a lookup in `:telemetry`'s handler table per event).

  Names are upstream Snakepit v0.13's where it has the same event, so handlers written for it
  keep working; events upstream lacks have names in the same style. Durations are in `:native`
  time units (convert with `System.convert_time_unit/3`), as `:telemetry.span/3`'s are, except
  where upstream used microseconds (`duration_us`).

  ## Requests

  Measured by the native pool: `queue_time` and `run_time` are the very numbers
  `Snakepit.get_stats/1` puts in its `queue_time_ms` and `run_time_ms` windows, so events and
  stats never disagree.

    * `[:snakepit, :request, :start]` - a request was accepted by its pool (a refused one emits
      no start, see `:saturated` below).
      Measurements: `monotonic_time`, `system_time`.
      Metadata: `pool`, `command`, `session_id` (or `nil`), `telemetry_span_context`.

    * `[:snakepit, :request, :stop]` - the request has its result, `{:ok, _}` or `{:error, _}`.
      Measurements: `duration` (from submit to result, in the caller), `queue_time` (from
      submit until a worker took it, or until it left the queue without running), `run_time`
      (from a worker taking it until its outcome; `nil` if it never reached a worker),
      `monotonic_time`.
      Metadata: those of `:start`, plus `worker_id` (the worker that answered or ran it; `nil`
      when none did), `outcome` (`:ok`, or the `Snakepit.Error` reason: `:worker_error`,
      `:timeout`, `:queue_timeout`, `:worker_crashed`, …) and `error` (the `Snakepit.Error`,
      or `nil`).

    * `[:snakepit, :request, :exception]` - code in the calling process raised while the request
      finished (an adapter's request-path callback, say); the exception is re-raised.
      Measurements: `duration`, `monotonic_time`. Metadata: those of `:start`, plus `kind`,
      `reason`, `stacktrace`.

    * `[:snakepit, :request, :executed]` - upstream's per-request event, with the stop's numbers.
      Measurements: `duration_us`. Metadata: `pool`, `worker_id`, `command`, `success`
      (boolean).

    * `[:snakepit, :pool, :queue, :timeout]` - a request waited past the queue timeout.
      Measurements: `queue_time`. Metadata: `pool`, `command`, `session_id`.

    * `[:snakepit, :pool, :saturated]` - a request was refused: the queue was full.
      Measurements: `max_queue_size`. Metadata: `pool`, `command`, `session_id`.

  ## Workers

  Emitted by the pool's owner process (`Snakepit.Pool`) as the native pool reports them.

    * `[:snakepit, :pool, :worker, :spawned]` - a worker finished its handshake and takes work.
      Measurements: `system_time`. Metadata: `pool`, `worker_id`, `os_pid` (`nil` for a BEAM
      worker).

    * `[:snakepit, :pool, :worker, :terminated]` - a worker is gone.
      Measurements: `system_time`. Metadata: `pool`, `worker_id`, `os_pid`, `reason` (how it
      ended, e.g. `"exit status 1"`, or `:recycled`), `planned` (true for a recycled worker).

    * `[:snakepit, :pool, :worker, :restarted]` - a worker died in service and a replacement is
      starting in its place. Measurements: `count` (1). Metadata: `pool`, `worker_id` (the dead
      one), `os_pid`, `reason`.

    * `[:snakepit, :worker, :recycled]` - a worker reached `:worker_max_requests` or
      `:worker_ttl`; its replacement already serves and it has exited. Measurements: `count`
      (1). Metadata: `pool`, `worker_id`, `os_pid`, `reason` (`:recycled`).

    * `[:snakepit, :worker, :health_check_failed]` - a worker answered its health check with an
      error; it is replaced. Measurements: `count` (1). Metadata: `pool`, `worker_id`,
      `os_pid`, `reason` (the worker's message).

  ## Sessions

  Emitted by `Snakepit.Bridge.SessionStore`.

    * `[:snakepit, :session_store, :session, :created]` - measurements: `system_time`;
      metadata: `session_id`.
    * `[:snakepit, :session_store, :session, :expired]` - a session's TTL passed (removed by a
      cleanup, or found expired). Measurements: `count` (1). Metadata: `session_id`.

  ## Streams

  Emitted by the consuming process (`Snakepit.execute_stream/4`, `Snakepit.stream/3`).

    * `[:snakepit, :stream, :start]` - a stream was accepted. Measurements: `monotonic_time`,
      `system_time`. Metadata: `pool`, `command`, `session_id`.
    * `[:snakepit, :stream, :credit_stall]` - a chunk used up the worker's credit window: the
      consumer has that many chunks it has not taken (its mailbox is full) and the worker waits
      for it. Measurements: `chunks` (received so far). Metadata: those of `:start`.
    * `[:snakepit, :stream, :stop]` - the stream ended. Measurements: `duration`, `chunks`
      (taken by the consumer), `monotonic_time`. Metadata: those of `:start`, plus `outcome`
      (`:done`, `:halted`, or the `Snakepit.Error` reason).

  ## Attaching

      :telemetry.attach_many("my-app-snakepit", Snakepit.Telemetry.events(),
        &MyApp.Metrics.handle_event/4, nil)
  """

  @compile {:no_warn_undefined, :telemetry}

  @key {__MODULE__, :enabled}

  @typedoc "A telemetry event name."
  @type event :: [atom(), ...]

  @typedoc "A request's span, kept by its caller from start to stop; `nil` when untimed."
  @type span :: {integer(), map()} | nil

  @request_events [
    [:snakepit, :request, :start],
    [:snakepit, :request, :stop],
    [:snakepit, :request, :exception],
    [:snakepit, :request, :executed],
    [:snakepit, :pool, :queue, :timeout],
    [:snakepit, :pool, :saturated]
  ]

  @worker_events [
    [:snakepit, :pool, :worker, :spawned],
    [:snakepit, :pool, :worker, :terminated],
    [:snakepit, :pool, :worker, :restarted],
    [:snakepit, :worker, :recycled],
    [:snakepit, :worker, :health_check_failed]
  ]

  @session_events [
    [:snakepit, :session_store, :session, :created],
    [:snakepit, :session_store, :session, :expired]
  ]

  @stream_events [
    [:snakepit, :stream, :start],
    [:snakepit, :stream, :credit_stall],
    [:snakepit, :stream, :stop]
  ]

  @doc "Every event snakepit_rs emits (see the module doc)."
  @spec events() :: [event()]
  def events, do: @request_events ++ @worker_events ++ @session_events ++ @stream_events

  @doc """
  Whether `:telemetry` is loaded, so that events are emitted. Checked once, then read from
  `:persistent_term`; `refresh/0` checks again.
  """
  @spec enabled?() :: boolean()
  def enabled? do
    case :persistent_term.get(@key, nil) do
      nil -> refresh()
      enabled -> enabled
    end
  end

  @doc """
  Checks again whether `:telemetry` is loaded (e.g. after loading code at run time) and
  returns it.
  """
  @spec refresh() :: boolean()
  def refresh do
    enabled = Code.ensure_loaded?(:telemetry) and function_exported?(:telemetry, :execute, 3)
    :persistent_term.put(@key, enabled)
    enabled
  end

  @doc "Emits `event` through `:telemetry` when it is loaded; otherwise does nothing."
  @spec execute(event(), map(), map()) :: :ok
  def execute(event, measurements, metadata) do
    if enabled?(), do: :telemetry.execute(event, measurements, metadata)
    :ok
  end

  @doc """
  Whether a handler is attached to one of a request's events (`:start`, `:stop`,
  `:executed`, the queue timeout): only then is a request timed and its events built. False
  when `:telemetry` is not loaded.
  """
  @spec requests_handled?() :: boolean()
  def requests_handled? do
    enabled?() and
      (handled?([:snakepit, :request, :stop]) or handled?([:snakepit, :request, :start]) or
         handled?([:snakepit, :request, :executed]) or
         handled?([:snakepit, :request, :exception]) or
         handled?([:snakepit, :pool, :queue, :timeout]))
  end

  # `:telemetry` keeps its handlers in an ETS table keyed by event name (telemetry 1.x); if the
  # table is not there, assume the event is handled.
  defp handled?(event) do
    :ets.member(:telemetry_handler_table, event)
  rescue
    ArgumentError -> true
  end

  ## Requests (called by `Snakepit.Call`)

  @doc false
  # Emits `[:snakepit, :request, :start]` for an accepted request that started at `started`
  # (monotonic, native units); returns its span.
  @spec request_start(integer(), term(), String.t(), String.t() | nil) :: span()
  def request_start(started, pool, command, session_id) do
    metadata = %{
      pool: pool,
      command: command,
      session_id: session_id,
      telemetry_span_context: make_ref()
    }

    :telemetry.execute(
      [:snakepit, :request, :start],
      %{monotonic_time: started, system_time: System.system_time()},
      metadata
    )

    {started, metadata}
  end

  @doc false
  # Emits the stop events of a request with its result and the native pool's timings (µs;
  # `run_us` nil when it never ran); returns the result.
  @spec request_stop(span(), result, String.t() | nil, non_neg_integer(), non_neg_integer() | nil) ::
          result
        when result: {:ok, term()} | {:error, Snakepit.Error.t()}
  def request_stop({started, metadata}, result, worker_id, queue_us, run_us) do
    now = System.monotonic_time()
    duration = now - started
    queue_time = native(queue_us)
    {outcome, error} = outcome(result)
    metadata = Map.merge(metadata, %{worker_id: worker_id, outcome: outcome, error: error})

    :telemetry.execute(
      [:snakepit, :request, :stop],
      %{
        duration: duration,
        queue_time: queue_time,
        run_time: run_us && native(run_us),
        monotonic_time: now
      },
      metadata
    )

    :telemetry.execute(
      [:snakepit, :request, :executed],
      %{duration_us: System.convert_time_unit(duration, :native, :microsecond)},
      %{
        pool: metadata.pool,
        worker_id: worker_id,
        command: metadata.command,
        success: outcome == :ok
      }
    )

    if outcome == :queue_timeout do
      :telemetry.execute(
        [:snakepit, :pool, :queue, :timeout],
        %{queue_time: queue_time},
        Map.take(metadata, [:pool, :command, :session_id])
      )
    end

    result
  end

  @doc false
  # Emits `[:snakepit, :request, :exception]` for code that raised while the request finished.
  @spec request_exception(span(), :error | :exit | :throw, term(), Exception.stacktrace()) :: :ok
  def request_exception({started, metadata}, kind, reason, stacktrace) do
    now = System.monotonic_time()

    :telemetry.execute(
      [:snakepit, :request, :exception],
      %{duration: now - started, monotonic_time: now},
      Map.merge(metadata, %{kind: kind, reason: reason, stacktrace: stacktrace})
    )
  end

  @doc false
  # Emits `[:snakepit, :pool, :saturated]` when `result` is a refusal because the queue was full.
  @spec refused({:error, Snakepit.Error.t()}, term(), String.t(), String.t() | nil) :: :ok
  def refused({:error, %{reason: :pool_saturated} = error}, pool, command, session_id) do
    execute(
      [:snakepit, :pool, :saturated],
      %{max_queue_size: error.details[:max_queue_size]},
      %{pool: pool, command: command, session_id: session_id}
    )
  end

  def refused(_result, _pool, _command, _session_id), do: :ok

  defp outcome({:ok, _}), do: {:ok, nil}
  defp outcome({:error, %{reason: reason} = error}), do: {reason, error}

  defp native(us), do: System.convert_time_unit(us, :microsecond, :native)
end
