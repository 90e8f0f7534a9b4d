defmodule Snakepit.Call do
  @moduledoc """
  The request path, run entirely in the calling process: resolve the pool, check the call,
  submit it to the native pool, wait for the reply, decode it.

  No process sits between a caller and its worker: `submit/4` hands the request to the native
  pool, which writes it to a free worker's pipe (or queues it), and the reply arrives in the
  caller's mailbox as `{tag, reply}`. `run/4` is a plain function of its arguments, so another
  node can call it through `:erpc` to use a pool it hosts.
  """

  alias Snakepit.{Error, Native, Telemetry}
  alias Snakepit.Adapter.Hooks
  alias Snakepit.Native.Gate
  alias Snakepit.Pool.{Options, Registry}

  @typedoc "A request accepted by `submit/4`, to be awaited by the process that submitted it."
  @opaque pending ::
            {reference(), reference(), non_neg_integer(), timeout(), Hooks.finish(),
             Telemetry.span()}

  @type result :: {:ok, term()} | {:error, Error.t()}

  @typedoc "Args as a call may give them: a map, a keyword list (or list of pairs) or `nil`."
  @type args :: map() | [{atom() | String.t(), term()}] | nil

  @typedoc "A pool: the name of a running pool, its process, or another process (see `execute/3`)."
  @type pool :: atom() | pid()

  @doc """
  Runs `command` on the pool `opts[:pool]` names; see `Snakepit.execute/3`.

  A pid that is not a pool running here is called as upstream Snakepit calls its pool:
  `GenServer.call(pool, {:execute, command, args, opts}, timeout)` (`timeout` is
  `opts[:timeout]`, else 300_000 ms, upstream's default), and its answer is normalized
  (`Snakepit.Error.normalize_public_result/2`). A pool's own process answers that call like
  this function does; a stub in a test may answer anything.
  """
  @spec execute(String.t(), args(), keyword()) :: result()
  def execute(command, args, opts) do
    pool = if is_list(opts), do: Options.call_pool(opts), else: Snakepit.Pool

    result =
      with :ok <- Options.validate_call(opts) do
        case Registry.lookup(pool) do
          {:ok, entry} ->
            with {:ok, pending} <- submit_entry(entry, pool, command, args, opts),
                 do: await(pending)

          {:error, _} = not_running ->
            cond do
              process = process_of(pool) -> call_process(process, command, args, opts)
              name = opts[:pool_name] -> {:error, pool_not_found(name)}
              true -> not_running
            end
        end
      end

    with_call_details(result, command, pool, opts)
  end

  @doc """
  Runs `command` with `args` on a worker of `pool` and returns its result. `opts` are the call
  options of `Snakepit.execute/3` (`pool` names the pool; a `:pool` option is ignored).
  """
  @spec run(pool(), String.t(), args(), keyword()) :: result()
  def run(pool, command, args, opts \\ []) do
    pool
    |> submit(command, args, opts)
    |> case do
      {:ok, pending} -> await(pending)
      error -> error
    end
    |> with_call_details(command, pool, opts)
  end

  @doc """
  Submits a request and returns as soon as the pool has accepted it (it runs on a worker or waits
  in the queue) or refused it. `await/1`, in the same process, gets its result. Useful where
  the caller must know that its request is in the pool before doing something else.
  """
  @spec submit(pool(), String.t(), args(), keyword()) :: {:ok, pending()} | {:error, Error.t()}
  def submit(pool, command, args, opts \\ []) do
    with :ok <- Options.validate_call(opts),
         {:ok, entry} <- Registry.lookup(pool),
         do: submit_entry(entry, pool, command, args, opts)
  end

  # With a handler of a request event attached the request is *timed*: its reply carries the
  # native pool's timings and worker, and its start and stop are emitted (`Snakepit.Telemetry`);
  # otherwise nothing of that is built.
  defp submit_entry({native, queue_timeout, default_timeout}, pool, command, args, opts) do
    with {:ok, args} <- check_request(command, args),
         # The adapter's request-path callbacks, if it has any (one lookup otherwise).
         {:ok, args, timeout, finish} <-
           Hooks.prepare(Hooks.lookup(native), command, args, opts[:timeout], default_timeout) do
      session = session(opts)
      tag = make_ref()
      timed = Telemetry.requests_handled?()
      started = if timed, do: System.monotonic_time()

      case submit_native(native, tag, command, args, session, timeout_ms(timeout), timed) do
        {:ok, request_id} ->
          span = if timed, do: Telemetry.request_start(started, pool, command, session_id(opts))
          {:ok, {native, tag, request_id, first_wait(queue_timeout, timeout), finish, span}}

        {:error, error} ->
          refused = {:error, Gate.error(error)}
          Telemetry.refused(refused, pool, command, session_id(opts))
          refused
      end
    end
  end

  defp session_id(opts), do: Keyword.get(opts, :session_id)

  @typedoc "A stream accepted by `submit_stream/3`: what `Snakepit.Stream` needs to consume it."
  @type stream :: %{
          native: reference(),
          tag: reference(),
          id: non_neg_integer(),
          window: pos_integer(),
          wait: timeout(),
          details: map()
        }

  @doc """
  Submits a streamed request (see `Snakepit.execute_stream/4`) on the pool `opts` select, from
  the process that will consume it: its chunks and end arrive in this process's mailbox
  (`Snakepit.Stream` reads them). The adapter's request-path callbacks do not apply, as
  upstream's streams skip them.
  """
  @spec submit_stream(String.t(), args(), keyword()) :: {:ok, stream()} | {:error, Error.t()}
  def submit_stream(command, args, opts) do
    pool = if is_list(opts), do: Options.call_pool(opts), else: Snakepit.Pool

    result =
      with :ok <- Options.validate_call(opts),
           {:ok, {native, queue_timeout, _}} <- stream_pool(pool, opts),
           {:ok, args} <- check_request(command, args) do
        tag = make_ref()
        session = session(opts)
        timeout = if opts[:timeout], do: timeout_ms(opts[:timeout])
        chunk_timeout = opts[:chunk_timeout]

        case stream_native(native, tag, command, args, session, timeout, chunk_timeout) do
          {:ok, id, window} ->
            wait = first_wait(queue_timeout, min(opts[:timeout] || :infinity, chunk_timeout))

            {:ok,
             %{
               native: native,
               tag: tag,
               id: id,
               window: window,
               wait: wait,
               details: call_details(command, pool, opts)
             }}

          {:error, error} ->
            {:error, Gate.error(error)}
        end
      end

    with_call_details(result, command, pool, opts)
  end

  defp stream_pool(pool, opts) do
    case Registry.lookup(pool) do
      {:ok, _} = found ->
        found

      {:error, _} = not_running ->
        if name = opts[:pool_name], do: {:error, pool_not_found(name)}, else: not_running
    end
  end

  defp stream_native(native, tag, command, args, session, timeout, chunk_timeout) do
    if dirty_args?(args),
      do: Native.pool_stream_dirty(native, tag, command, args, session, timeout, chunk_timeout),
      else: Native.pool_stream(native, tag, command, args, session, timeout, chunk_timeout)
  end

  @doc false
  # A chunk's JSON as a term, decoded in the calling process (see `decode_reply/1`).
  @spec decode_json(binary()) :: result()
  def decode_json(json), do: decode_reply({:ok_json, json})

  @doc "Waits for the result of a request this process submitted with `submit/4`."
  @spec await(pending()) :: result()
  def await({native, tag, request_id, wait, finish, nil}),
    do: finish(finish, await_reply(native, tag, request_id, wait))

  def await({native, tag, request_id, wait, finish, span}) do
    {result, worker_id, queue_us, run_us} = await_timed(native, tag, request_id, wait)

    result =
      try do
        finish(finish, result)
      catch
        kind, reason ->
          Telemetry.request_exception(span, kind, reason, __STACKTRACE__)
          :erlang.raise(kind, reason, __STACKTRACE__)
      end

    Telemetry.request_stop(span, result, worker_id, queue_us, run_us)
  end

  defp finish(nil, result), do: result
  defp finish(finish, result), do: Hooks.finish(finish, result)

  # Encoding args happens in the submit NIF; beyond this size (bytes in external term format, a
  # fast proxy for the JSON's) it could outlast a scheduler slice, so a dirty scheduler takes it.
  @dirty_args_bytes 64 * 1024

  defp submit_native(native, tag, command, args, session, timeout_ms, timed) do
    if :erlang.external_size(args) > @dirty_args_bytes,
      do: Native.pool_submit_dirty(native, tag, command, args, session, timeout_ms, timed),
      else: Native.pool_submit(native, tag, command, args, session, timeout_ms, timed)
  end

  defp dirty_args?(args), do: :erlang.external_size(args) > @dirty_args_bytes

  # `nil`, or the session and its affinity (`nil`: the pool's); options are validated already.
  # Without a session the affinity means nothing.
  defp session(opts) do
    case Keyword.get(opts, :session_id) do
      nil -> nil
      session_id -> {session_id, Options.affinity(Keyword.get(opts, :affinity))}
    end
  end

  # Waits for `{tag, reply}`. When `wait` ms pass without it, the native pool decides atomically:
  # the request is withdrawn (expired: no reply will ever come), it has time left, or its reply is
  # already on the way.
  defp await_reply(native, tag, request_id, wait) do
    receive do
      {^tag, reply} -> decode_reply(reply)
    after
      wait ->
        case Native.pool_check_deadline(native, request_id) do
          {:wait, more} -> await_reply(native, tag, request_id, more)
          {:expired, error, _queue_us, _run_us} -> {:error, Gate.error(error)}
          :replied -> receive(do: ({^tag, reply} -> decode_reply(reply)))
        end
    end
  end

  # `await_reply/4` for a timed request: the result, its worker and the native pool's timings.
  defp await_timed(native, tag, request_id, wait) do
    receive do
      {^tag, reply, worker_id, queue_us, run_us} ->
        {decode_reply(reply), worker_id, queue_us, run_us}
    after
      wait ->
        case Native.pool_check_deadline(native, request_id) do
          {:wait, more} ->
            await_timed(native, tag, request_id, more)

          {:expired, error, queue_us, run_us} ->
            {{:error, Gate.error(error)}, nil, queue_us, run_us}

          :replied ->
            receive do
              {^tag, reply, worker_id, queue_us, run_us} ->
                {decode_reply(reply), worker_id, queue_us, run_us}
            end
        end
    end
  end

  # Beyond this size decoding may outlast a scheduler slice; a dirty scheduler takes it.
  @dirty_decode_bytes 64 * 1024

  defp decode_reply({:ok_json, json}) do
    decoded =
      if byte_size(json) > @dirty_decode_bytes,
        do: Native.json_decode_dirty(json),
        else: Native.json_decode(json)

    case decoded do
      {:ok, _} = ok -> ok
      # A result that cannot become a term (e.g. nested beyond the limit): `:invalid_result`.
      {:error, error} -> {:error, Gate.error(error)}
    end
  end

  defp decode_reply({:ok, _} = ok), do: ok
  defp decode_reply({:error, error}), do: {:error, Gate.error(error)}

  # The common case, a map, costs one match; a keyword list (or list of pairs) becomes a map and
  # `nil` an empty one, as upstream accepts them.
  defp check_request(command, args) when is_binary(command) and is_map(args) do
    if String.valid?(command), do: {:ok, args}, else: {:error, invalid_utf8(command)}
  end

  defp check_request(command, _args) when not is_binary(command),
    do:
      {:error, Error.new(:invalid_command, "command must be a string, got: #{inspect(command)}")}

  defp check_request(command, nil), do: check_request(command, %{})

  defp check_request(command, args) do
    with {:ok, map} <- args_map(args), do: check_request(command, map)
  end

  defp invalid_utf8(command),
    do: Error.new(:invalid_command, "command is not valid UTF-8: #{inspect(command)}")

  defp args_map(args) when is_list(args) do
    if pairs?(args) do
      map = Map.new(args)

      if map_size(map) == length(args),
        do: {:ok, map},
        else: {:error, invalid_args("args repeat a key: #{inspect(duplicate_key(args))}")}
    else
      {:error, not_args(args)}
    end
  end

  defp args_map(args), do: {:error, not_args(args)}

  # A proper list of `{key, value}` with atom or string keys.
  defp pairs?([]), do: true
  defp pairs?([{key, _} | rest]) when is_atom(key) or is_binary(key), do: pairs?(rest)
  defp pairs?(_), do: false

  defp duplicate_key(pairs) do
    Enum.reduce_while(pairs, MapSet.new(), fn {key, _}, seen ->
      if MapSet.member?(seen, key), do: {:halt, key}, else: {:cont, MapSet.put(seen, key)}
    end)
  end

  defp not_args(args) do
    invalid_args(
      "args must be a map, a keyword list (or a list of {key, value} pairs with atom or " <>
        "string keys) or nil, got: #{inspect(args)}"
    )
  end

  defp invalid_args(message), do: Error.new(:invalid_args, message)

  ## Errors' details

  # Every error of a call says which command and pool it was about (as upstream's do); the
  # success path pays one match.
  defp with_call_details({:error, %Error{details: details} = error}, command, pool, opts),
    do: {:error, %{error | details: Map.merge(call_details(command, pool, opts), details)}}

  defp with_call_details(result, _command, _pool, _opts), do: result

  # `opts` is whatever the caller passed: the error for options that are not a keyword list
  # gets its details here too. (Dialyzer trusts the public specs and thinks it is always a list.)
  @dialyzer {:nowarn_function, call_details: 3}
  defp call_details(command, pool, opts) do
    pool_name = if is_list(opts), do: Keyword.get(opts, :pool_name, pool), else: pool
    call = %{command: command, pool: pool}
    call = if is_atom(pool_name), do: Map.put(call, :pool_name, pool_name), else: call
    session_id = if is_list(opts), do: Keyword.get(opts, :session_id)
    if is_binary(session_id), do: Map.put(call, :session_id, session_id), else: call
  end

  defp pool_not_found(name),
    do: Error.new(:pool_not_found, "no pool named #{inspect(name)} is running")

  ## A pool that is another process

  # The process to call for a pool not running here: a pid (alive or not: a dead one answers
  # `:noproc`). Not a registered name: a name that is not a pool of ours is a mistake more often
  # than a stub, and the call could crash the process that holds it (a supervisor, say).
  defp process_of(pool) when is_pid(pool), do: pool
  defp process_of(_pool), do: nil

  # Upstream's default request timeout, for a process that is not a pool of ours.
  @process_timeout 300_000

  defp call_process(process, command, args, opts) do
    timeout = Keyword.get(opts, :timeout) || @process_timeout

    try do
      case GenServer.call(process, {:execute, command, args, opts}, timeout) do
        {:ok, _} = ok -> ok
        {:error, _} = error -> Error.normalize_public_result(error, %{})
        other -> {:error, Error.new(:request_failed, "pool answered #{inspect(other)}")}
      end
    catch
      :exit, {:timeout, _} ->
        message = "pool #{inspect(process)} did not answer within #{timeout} ms"
        {:error, Error.new(:timeout, message, %{timeout_ms: timeout})}

      :exit, {:noproc, _} ->
        {:error, Error.new(:pool_not_initialized, "pool #{inspect(process)} is not running")}

      :exit, {reason, _} ->
        message = "pool #{inspect(process)} exited before answering: #{inspect(reason)}"
        {:error, Error.new(:pool_shutdown, message, %{exit_reason: reason})}
    end
  end

  # The first wait ends at the queue deadline or the execution timeout, whichever comes first;
  # `receive ... after` takes at most 2^32 - 1 ms.
  defp first_wait(queue_timeout, timeout), do: queue_timeout |> min(timeout) |> min(0xFFFF_FFFF)

  # `:infinity` (and anything longer) runs for ~8900 years: the native side takes u64 ms, and
  # waits in `receive ... after` are capped by `pool_check_deadline` (at most 2^32 - 1 ms each).
  @max_timeout_ms 0xFFFF_FFFF_FFFF
  defp timeout_ms(:infinity), do: @max_timeout_ms
  defp timeout_ms(ms), do: min(ms, @max_timeout_ms)
end
