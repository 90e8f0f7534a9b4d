defmodule Snakepit.Call do
  @moduledoc """
  The request path, run entirely in the calling process: resolve the pool, check the call,
  submit it to the native pool, wait for the reply, decode it.

  No process sits between a caller and its worker: `submit/4` hands the request to the native
  pool, which writes it to a free worker's pipe (or queues it), and the reply arrives in the
  caller's mailbox as `{tag, reply}`. `run/4` is a plain function of its arguments, so another
  node can call it through `:erpc` to use a pool it hosts.
  """

  alias Snakepit.{Error, Native}
  alias Snakepit.Native.Gate
  alias Snakepit.Pool.{Options, Registry}

  @typedoc "A request accepted by `submit/4`, to be awaited by the process that submitted it."
  @opaque pending :: {reference(), reference(), non_neg_integer(), timeout()}

  @type result :: {:ok, term()} | {:error, Error.t()}

  @doc "Runs `command` on the pool named by `opts[:pool]`; see `Snakepit.execute/3`."
  @spec execute(String.t(), map(), keyword()) :: result()
  def execute(command, args, opts) do
    with :ok <- Options.validate_call(opts),
         {:ok, pending} <-
           submit_checked(Options.call_pool(opts), command, args, opts),
         do: await(pending)
  end

  @doc """
  Runs `command` with `args` on a worker of `pool` and returns its result. `opts` are the call
  options of `Snakepit.execute/3` (`pool` names the pool; a `:pool` option is ignored).
  """
  @spec run(atom(), String.t(), map(), keyword()) :: result()
  def run(pool, command, args, opts \\ []) do
    with {:ok, pending} <- submit(pool, command, args, opts), do: await(pending)
  end

  @doc """
  Submits a request and returns as soon as the pool has accepted it (it runs on a worker or waits
  in the queue) or refused it. `await/1`, in the same process, gets its result. Useful where
  the caller must know that its request is in the pool before doing something else.
  """
  @spec submit(atom(), String.t(), map(), keyword()) :: {:ok, pending()} | {:error, Error.t()}
  def submit(pool, command, args, opts \\ []) do
    with :ok <- Options.validate_call(opts), do: submit_checked(pool, command, args, opts)
  end

  defp submit_checked(pool, command, args, opts) do
    with {:ok, {native, queue_timeout, default_timeout}} <- Registry.lookup(pool),
         :ok <- validate_request(command, args) do
      timeout = Keyword.get(opts, :timeout, default_timeout)
      session_id = Keyword.get(opts, :session_id)
      tag = make_ref()

      case submit_native(native, tag, command, args, session_id, timeout_ms(timeout)) do
        {:ok, request_id} -> {:ok, {native, tag, request_id, min(queue_timeout, timeout)}}
        {:error, error} -> {:error, Gate.error(error)}
      end
    end
  end

  @doc "Waits for the result of a request this process submitted with `submit/4`."
  @spec await(pending()) :: result()
  def await({native, tag, request_id, wait}), do: await_reply(native, tag, request_id, wait)

  # Encoding args happens in the submit NIF; beyond this size (bytes in external term format, a
  # fast proxy for the JSON's) it could outlast a scheduler slice, so a dirty scheduler takes it.
  @dirty_args_bytes 64 * 1024

  defp submit_native(native, tag, command, args, session_id, timeout_ms) do
    if :erlang.external_size(args) > @dirty_args_bytes,
      do: Native.pool_submit_dirty(native, tag, command, args, session_id, timeout_ms),
      else: Native.pool_submit(native, tag, command, args, session_id, timeout_ms)
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
          {:expired, error} -> {:error, Gate.error(error)}
          :replied -> receive(do: ({^tag, reply} -> decode_reply(reply)))
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

  defp validate_request(command, args) do
    cond do
      not is_binary(command) ->
        {:error,
         Error.new(:invalid_command, "command must be a string, got: #{inspect(command)}")}

      not String.valid?(command) ->
        {:error, Error.new(:invalid_command, "command is not valid UTF-8: #{inspect(command)}")}

      not is_map(args) ->
        {:error, Error.new(:invalid_args, "args must be a map, got: #{inspect(args)}")}

      true ->
        :ok
    end
  end

  @max_timeout_ms 0xFFFF_FFFF_FFFF
  defp timeout_ms(:infinity), do: @max_timeout_ms
  defp timeout_ms(ms), do: ms
end
