defmodule Snakepit do
  @moduledoc """
  Pools of external worker processes (Python first) with Snakepit's API, on a Rust core.

      {:ok, _} = Snakepit.Pool.start_link(size: 4, adapter_args: ["--adapter", "my_pkg.MyAdapter"])
      :ok = Snakepit.Pool.await_ready()
      {:ok, %{"status" => "pong"}} = Snakepit.execute("ping", %{})

  Every call returns `{:ok, result}` or `{:error, %Snakepit.Error{}}`; a caller never crashes
  because of the pool. Results come back as maps with string keys.
  """

  alias Snakepit.{Call, Error, Native, Pool}
  alias Snakepit.Pool.Registry

  @doc """
  Runs `command` with `args` on a free worker and returns its result.

  `args` is a map; a keyword list (or a list of `{key, value}` pairs with atom or string keys,
  no key twice) is taken as the map of its pairs, and `nil` as `%{}`, as upstream Snakepit
  accepts them. The worker receives them as JSON: atom keys and values as strings, tuples as
  arrays, integers of any size exactly. Structs follow Jason's rules as far as JSON can: a
  `DateTime`, `NaiveDateTime`, `Date` or `Time` (of `Calendar.ISO`) is sent as the ISO 8601
  string its `to_iso8601/1` returns (`"2024-01-02T03:04:05.123456Z"`, `"2024-01-02"`), as Jason
  encodes it; any other struct is refused with `:invalid_args` naming it and where it was (e.g.
  `"a MyApp.User struct cannot be sent to a worker ... at args.user"`), as Jason refuses a
  struct that does not implement its encoder: JSON would lose what it is, and a struct's
  encoder may select or transform fields that snakepit_rs cannot see. Convert it first (e.g.
  `Map.from_struct/1`). Anything else JSON cannot carry (a pid, a function, a binary that is
  not UTF-8, ...) is refused the same way, and nothing is sent.

  Options:

  #{Snakepit.Pool.Options.docs(:call)}

  `:pool` may be a pool's name or its pid. A pid that is not a running snakepit_rs pool (a
  stub pool in a test, say) is called as upstream calls its pool,
  `GenServer.call(pool, {:execute, command, args, opts}, timeout)` (`timeout` is `:timeout`,
  else 300_000 ms), and its answer is returned, a bare `{:error, reason}` converted as upstream
  converts it (`Snakepit.Error.normalize_public_result/2`). A pool's own process answers that
  call too, like this function.

  An unknown or invalid option is `{:error, %Snakepit.Error{reason: :invalid_option}}`, naming
  it; nothing is sent. Every error is a `%Snakepit.Error{}` (see its docs for every reason and
  its category), whose `details` hold `reason`, `command` and `pool` (and `pool_name` when the
  pool has one); an exception raised by the worker's code is a `:worker_error` of category
  `:python_error` with upstream's exception struct in `details.reason`, e.g.
  `%Snakepit.Error.ValueError{}`, and its traceback in `python_traceback`.
  """
  @spec execute(String.t(), Call.args(), keyword()) :: {:ok, term()} | {:error, Error.t()}
  def execute(command, args, opts \\ []), do: Call.execute(command, args, opts)

  @doc """
  Runs `command` with `args` as part of session `session_id`: the session's requests go to the
  worker that served it before, so that state a tool keeps on that worker (a loaded model, a
  conversation, objects referred to by id) is found again. The same as `execute/3` with
  `session_id: session_id` in `opts`; every option of `execute/3` applies.

  `session_id` must be 1 to 256 bytes of ASCII letters, digits, `_` or `-`
  (`^[A-Za-z0-9_-]+$`); anything else is `{:error, %Snakepit.Error{reason:
  :invalid_session_id}}` and nothing is sent.

  ## Affinity

  A session is bound to the worker that last started one of its requests. A request of a
  session that is not bound yet runs like any request (on an idle worker, else it waits for
  the first free one) and binds the session to its worker. For a bound session, the
  `:affinity` option (else the pool's `:affinity`, `:hint` by default; upstream's `affinity`
  configuration key sets it) says what happens:

    * `:hint` - the session's worker idle: it runs the request. Busy while another worker is
      idle: the idle one runs it at once and the session moves there. Every worker busy: the
      request waits for the session's worker, but only while every other worker is busy too -
      the first worker to free up with nothing of its own sessions' to run takes it, and the
      session moves there. So `:hint` promises that a request never waits while any worker is
      idle, and that it runs on the session's worker whenever that costs no waiting: it does
      *not* promise the same worker. State kept on a worker may be missing after a move (the
      call then sees a fresh worker); use a strict mode when it must be there.
    * `:strict_queue` - the request runs on the session's worker only, waiting for it while
      it is busy, at most `:queue_timeout` (then `:queue_timeout`, as any waiting request).
    * `:strict_fail_fast` - the session's worker idle: it runs the request; busy:
      `{:error, %Snakepit.Error{reason: :worker_busy}}` at once, and nothing is queued.

  If the session's worker is gone (it crashed or was killed, or was recycled by
  `:worker_max_requests` / `:worker_ttl`), strict requests get `{:error, %Snakepit.Error{reason:
  :session_worker_unavailable}}` - those waiting for it too - because the state kept there is
  gone with it. As in upstream Snakepit, this holds for every later strict request of the
  session until it is forgotten (`Snakepit.Pool.end_session/2`, the end of the session) or a
  `:hint` request moves it to a live worker. A `:hint` request just runs elsewhere and rebinds.

  Requests of a session submitted at the same time before any of them started are plain
  requests; once one starts, strict ones still waiting follow it to its worker. A binding
  unused for the pool's `:session_ttl` (an hour by default) is forgotten.

      {:ok, _} = Snakepit.execute_in_session("user_42", "load_model", %{name: "small"})
      {:ok, out} = Snakepit.execute_in_session("user_42", "predict", %{x: 1}, affinity: :strict_queue)
  """
  @spec execute_in_session(String.t(), String.t(), Call.args(), keyword()) ::
          {:ok, term()} | {:error, Error.t()}
  def execute_in_session(session_id, command, args, opts \\ []) do
    with :ok <- Snakepit.SessionId.validate(session_id) do
      if is_list(opts),
        do: Call.execute(command, args, Keyword.put(opts, :session_id, session_id)),
        else: Call.execute(command, args, opts)
    end
  end

  @doc """
  Runs the streaming tool `command` with `args` and calls `callback` once per chunk, in order,
  in the calling process; returns `:ok` after the last chunk.

  A streaming tool is a Python generator or `async` generator, a tool marked
  `@tool(supports_streaming=True)`, or one that yields upstream's `StreamChunk`s (see
  `guides/streaming.md`). The callback gets each chunk as upstream Snakepit v0.13 gives it:

    * a map the tool yielded, as is (string keys), plus `"is_final"`;
    * any other value `v` as `%{"data" => v, "is_final" => false}` (`nil` gives just
      `%{"is_final" => false}`; a string is parsed as JSON text, as upstream does with the
      bytes it receives: `%{"raw_data_base64" => ...}` when it is not JSON);
    * a `StreamChunk(data, is_final)` as its `data` the same way, with `"is_final"` its mark,
      and `"_metadata"` (a map of strings) when it carries metadata;
    * after the last chunk, when no chunk was marked final, one more: `%{"is_final" => true}`,
      upstream's end-of-stream marker.

  For `yield {"step": i}` over 1..3:

      :ok = Snakepit.execute_stream("progress", %{steps: 3}, fn chunk -> IO.inspect(chunk) end)
      # %{"step" => 1, "is_final" => false}
      # %{"step" => 2, "is_final" => false}
      # %{"step" => 3, "is_final" => false}
      # %{"is_final" => true}

  The callback's return value: `:halt` stops the stream and the call returns `:ok`;
  `{:halt, reason}` stops it and returns `{:error, %Snakepit.Error{}}` for `reason` (as
  `Snakepit.Error.normalize_public_error/2` makes it); anything else goes on. If the callback
  raises, the stream stops and the call returns `{:error, %Snakepit.Error{reason:
  :callback_exception}}` (`details.reason` is upstream's `{:callback_exception, exception,
  stacktrace}`); a throw or exit stops the stream and goes on up. Stopping a stream cancels the
  tool on its worker (its generator is closed, so its `finally` blocks run) and the worker goes
  back to the pool once the tool has stopped. So does the death of the calling process.

  Errors, as `{:error, %Snakepit.Error{}}` after the chunks that came before: the tool raised
  (`:worker_error`, with the Python error); the worker died (`:worker_crashed`; it is
  replaced); `:timeout` (below); `:streaming_not_supported` when `command` is not a streaming
  tool (it is not run) or the pool's workers cannot stream (an Elixir adapter's, upstream's
  "Streaming not supported by adapter"); and every error `execute/3` returns before a request
  runs. Calling a streaming tool with `execute/3` instead gives `{:ok, list}`: the worker
  collects the chunks (each `StreamChunk`'s `data`).

  Options: those of `execute/3` — `:pool`, `:pool_name`, `:session_id`, `:affinity` — and:

    * `:timeout` - ms the whole stream may take once a worker runs it; default the pool's
      `:stream_timeout` (5 minutes, as upstream's)
    * `:chunk_timeout` - ms the worker may go without sending the next chunk (or the end)
      while it may send; default the pool's `:chunk_timeout` (none). The clock stops while the
      worker waits for the consumer (see back-pressure)

  Past either, the tool is cancelled and the call returns `{:error, %Snakepit.Error{reason:
  :timeout}}`; a worker that does not stop within the pool's `:cancel_grace` is killed.

  Back-pressure: the worker runs at most the pool's `:stream_window` chunks ahead of the
  callback, so a slow callback holds the tool at its `yield` instead of filling the mailbox.
  Workers that do not announce stream credit in their handshake stream without that limit.
  """
  @spec execute_stream(String.t(), Call.args(), (map() -> term()), keyword()) ::
          :ok | {:error, Error.t()}
  def execute_stream(command, args \\ %{}, callback, opts \\ []),
    do: Snakepit.Stream.Callback.run(command, args, callback, opts)

  @doc """
  `execute_stream/4` as part of session `session_id`: the stream runs on the session's worker
  under the same affinity rules as `execute_in_session/4` (`:affinity` applies). An invalid
  `session_id` is `{:error, %Snakepit.Error{reason: :invalid_session_id}}`.
  """
  @spec execute_in_session_stream(
          String.t(),
          String.t(),
          Call.args(),
          (map() -> term()),
          keyword()
        ) ::
          :ok | {:error, Error.t()}
  def execute_in_session_stream(session_id, command, args \\ %{}, callback, opts \\ []) do
    with :ok <- Snakepit.SessionId.validate(session_id) do
      opts = if is_list(opts), do: Keyword.put(opts, :session_id, session_id), else: opts
      execute_stream(command, args, callback, opts)
    end
  end

  @doc """
  The chunks of the streaming tool `command` as a lazy `Enumerable` (beyond upstream):
  nothing runs until it is enumerated, in the enumerating process; each element is the value
  the tool yielded (for upstream's `StreamChunk`s, their `data`), with no end marker.

      Snakepit.stream("count", %{n: 1_000_000}) |> Stream.map(&(&1 * 2)) |> Enum.take(5)
      #=> [0, 2, 4, 6, 8]

  Works with `Enum` and `Stream`; stopping early (`Enum.take/2`, `Stream.take/2`,
  `Enum.find/2`, an exception) stops the tool on its worker as a halted `execute_stream/4`
  does. Elements are acknowledged as they are taken, so the worker runs at most the pool's
  `:stream_window` chunks ahead of the consumer. An error (every one `execute_stream/4` can
  return) raises `Snakepit.Error`. Options as `execute_stream/4`'s.
  """
  @spec stream(String.t(), Call.args(), keyword()) :: Enumerable.t()
  def stream(command, args \\ %{}, opts \\ []), do: Snakepit.Stream.resource(command, args, opts)

  @doc """
  The pool's counters and occupancy, a map of:

    * `workers`, `available`, `busy` - worker slots: with a worker, idle, running a request
    * `requests` - requests the pool accepted (a refused call is not a request)
    * `completed` - accepted requests answered with a result
    * `errors` - accepted requests answered with an error: the sum of
      * `worker_errors` - the command raised, or the worker has no such command
      * `timeouts` - the command ran longer than its `:timeout`
      * `queue_timeouts` - no worker became free within `:queue_timeout` (it never ran)
      * `requests_lost` - its worker crashed or broke the protocol while running it
      * `shutdown_errors` - the pool stopped first
      * `circuit_errors` - it was waiting in the queue when the circuit opened
      * `session_worker_lost` - it waited for its session's worker (strict affinity), which
        went away (`:session_worker_unavailable`)
    * `callers_gone` - the caller died while its request waited in the queue: dropped, never run
    * `halted` - streams stopped early by their consumer (or its death); not errors
    * `streams`, `chunks` - accepted requests that were streams (counted in `requests` too),
      and the chunks workers sent
    * `sessions` - sessions bound to a worker (see `execute_in_session/4`)
    * `in_flight` - running now, no outcome yet
    * `queued` - waiting for a free worker now
    * `pool_saturated`, `circuit_rejections`, `worker_busy`, `session_worker_unavailable` -
      calls refused at once (`:pool_saturated`, `:circuit_open`, `:worker_busy`,
      `:session_worker_unavailable`); not requests
    * `worker_starts`, `worker_start_failures`, `worker_crashes` (a worker that died or broke
      the protocol, a failed health check among them), `workers_killed` (silent past a
      timeout and `:cancel_grace`, or a health check that got no answer), `worker_recycles`,
      `health_checks` - what happened to workers
    * `avg_response_time_ms` - submit to answer, over requests a worker answered (`completed`
      and `worker_errors`)
    * `circuit_open` - whether `:max_start_failures` starts in a row failed and none since
      succeeded
    * `error_rate` - `errors` / finished requests (every outcome above but `in_flight` and
      `queued`) over the pool's life, a float from 0.0 to 1.0 (0.0 before any finished)
    * `queue_time_ms`, `run_time_ms` - `%{p50: ms, p95: ms, p99: ms, samples: n}` over a recent
      window of finished requests (between 512 and 1024 of the latest, in a fixed-size
      histogram of the native pool: each percentile is within 1/16 of its exact value; all
      zero with `samples: 0` when none). Queue time runs from submit until a worker took the
      request, or until it left the queue without running (every finished request has one);
      run time from a worker taking it until its outcome (requests that reached a worker).
      These are the numbers the `[:snakepit, :request, :stop]` telemetry event reports
      (`Snakepit.Telemetry`)

  Every accepted request is in exactly one of the outcomes, so in any one snapshot:

      requests == completed + errors + callers_gone + halted + in_flight + queued

  Upstream Snakepit reports `errors` too but never increments it; here it counts every
  accepted request that ended in an error, as above.
  """
  @spec get_stats(Pool.pool()) :: map()
  def get_stats(pool \\ Pool), do: Native.pool_stats(Registry.native!(pool))

  @doc """
  One map per worker slot in use:

    * `id`, `os_pid` (`nil` for a BEAM worker, and `pid` then), `status` (`:available`,
      `:busy`, `:starting`, or `:draining` — recycled, finishing its request before it exits)
    * `requests` - requests answered by the slot's workers (a crashed worker's replacement
      takes its slot and goes on counting)
    * `errors` - of those, and of requests that timed out or were lost with their worker, the
      ones that ended in an error
    * `last_used_ms_ago` - ms since a worker of the slot last finished a request; `nil` if none
      has
    * `uptime_ms` - ms since the current worker started (since the slot began while it is
      `:starting`)
    * `memory_rss_bytes` - the worker process's resident memory, read from
      `/proc/<os_pid>/statm` at the call (never on the request path); `nil` for a BEAM worker
      or when it cannot be read
  """
  @spec list_workers(Pool.pool()) :: [map()]
  def list_workers(pool \\ Pool), do: Native.pool_workers(Registry.native!(pool))

  @doc """
  Runs `fun` as a script: starts Snakepit if it is not running, waits for its pools, runs
  `fun`, stops what this call started, and returns what `fun` returned (or raises what it
  raised, after stopping). For Mix tasks and scripts, so that no worker process outlives them.

  Options (upstream Snakepit v0.13's):

    * `:stop_mode` - what to stop afterwards: `:if_started` (default) stops only what this call
      started: the Snakepit application if it was not running, else the default pool
      `Snakepit.Pool` if this call had to start it; pools the host application started keep
      running. `:always` stops the Snakepit application (and every pool under it), `:never`
      stops nothing.
    * `:exit_mode` - how the VM ends afterwards: `:none` (default: return to the caller),
      `:halt` (`System.halt/1`), `:stop` (`System.stop/1`, a graceful shutdown), or `:auto`
      (`:stop` when this call started Snakepit and the VM runs with `-no_halt`, else `:none`).
      The status is 0 when `fun` returned, 1 when it raised or the pools did not start.
      `SNAKEPIT_SCRIPT_EXIT` sets it when the option is absent, and upstream's older
      `halt: true` or `SNAKEPIT_SCRIPT_HALT=true` mean `:halt` (see `Snakepit.Script.Options`
      for the precedence).
    * `:await_pool` - whether to wait for the pools before running `fun` (default: the
      `pooling_enabled` setting, or `true` when `:pool_options` is given). Waiting covers the
      pools the application's configuration started and `Snakepit.Pool`, which is started from
      the configuration (see `Snakepit.Config`) merged with `:pool_options` when it does not
      run and either the application started no pool or `:pool_options` is given.
    * `:pool_options` - options for that default pool (ignored when `Snakepit.Pool` runs)
    * `:timeout` - ms to wait for the pools (default `15000`); when they are not ready in time,
      `fun` does not run and the result is `{:error, :pool_initialization_timeout}`; when a
      pool fails otherwise (none of its workers could start), `{:error, %Snakepit.Error{}}`.
    * `:restart` - `true` stops a running Snakepit first, so that it starts again from the
      current configuration (and is then this call's to stop); `:auto` (default) does so only
      with `stop_mode: :always` inside a Mix project; `false` never.
    * `:cleanup_timeout` - ms to wait, after stopping, for the worker processes of the pools
      it stopped to end before they get SIGKILL (default `5000`; `0` skips the check). A
      pool's own stop already waits for its workers, so this is a safety net.
    * `:shutdown_timeout` - accepted for upstream's sake (default `15000`): stopping here is
      synchronous, bounded by each pool's `:shutdown_grace`.

  An invalid option value raises `ArgumentError`; other keys are ignored, as upstream does.
  """
  @spec run_as_script((() -> result), keyword()) ::
          result | {:error, :pool_initialization_timeout | Error.t()}
        when result: term()
  def run_as_script(fun, opts \\ []) when is_function(fun, 0),
    do: Snakepit.Script.run(fun, opts)

  @doc """
  Ends worker processes of this run that outlived their pool: SIGTERM to each (with its
  process group), up to 3 s to end, then SIGKILL. Returns `:ok`, or `{:timeout, os_pids}` for
  processes that survived even SIGKILL.

  Unlike upstream Snakepit, workers of running pools are left alone (their pool would replace
  them at once); stop a pool to stop its workers. Stopping a pool already waits until its
  workers are gone, so normally there is nothing to clean up.
  """
  @spec cleanup() :: :ok | {:timeout, [pos_integer()]}
  def cleanup, do: cleanup(fn -> Snakepit.Cleanup.run(Snakepit.Cleanup.leftovers(), 3_000) end)

  @doc """
  Runs `cleanup_fun` (what `cleanup/0` runs) and returns its result, or `:ok` when it exits
  because a process it calls is not running (`:noproc`), so cleanup after a shutdown is
  harmless. As upstream, for tests and embedding.
  """
  @spec cleanup((() -> result)) :: result | :ok when result: :ok | {:timeout, list()}
  def cleanup(cleanup_fun) when is_function(cleanup_fun, 0) do
    cleanup_fun.()
  catch
    :exit, {:noproc, _} -> :ok
    :exit, :noproc -> :ok
  end
end
