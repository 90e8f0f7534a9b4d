defmodule Snakepit.BeamWorker do
  @moduledoc """
  A worker that is a BEAM process: it runs an `execute/3` adapter (see `Snakepit.Adapter`) for
  one slot of a pool, with no OS process.

  The pool's owner spawns it, linked, when the native pool asks for a worker
  (`Snakepit.BeamWorkers`). It runs the adapter's `init/1`, tells the native pool it is ready
  (which installs it), then takes one message at a time:

    * `{:snakepit_request, json}` - a request as an OS worker would read it (`docs/protocol.md`):
      it runs `execute(command, args, opts)` in this process and answers through
      `Snakepit.Native.beam_worker_reply/5`, which completes the request in the native pool
      and sends the caller its reply;
    * `{:snakepit_health_check, id}` - answered at once, without the adapter;
    * `{:snakepit_cancel, id}` - its request already ran to its end (requests run in this
      process, one at a time), so there is nothing to stop;
    * `:snakepit_close` - runs the adapter's `terminate/2` and exits.

  Its exit, whatever the cause, reaches the owner through the link, and the native pool then
  fails its running request with `:worker_crashed` and starts a replacement.
  """

  require Logger

  alias Snakepit.Native

  # Beyond this size decoding a request may outlast a scheduler slice (as in `Snakepit.Call`).
  @dirty_decode_bytes 64 * 1024

  @doc """
  Spawns the worker for `slot` of the native pool `native`, linked to the caller (the pool's
  owner). `uid` and `id` are the ids the native pool gave it; `opts` are the pool's options.
  """
  @spec start_link(reference(), module(), keyword(), non_neg_integer(), pos_integer(), String.t()) ::
          pid()
  def start_link(native, adapter, opts, slot, uid, id) do
    worker = %{native: native, adapter: adapter, slot: slot, uid: uid, id: id}
    spawn_link(fn -> init(worker, opts) end)
  end

  defp init(worker, opts) do
    Logger.metadata(snakepit_worker: worker.id)

    case init_adapter(worker.adapter, opts) do
      {:ok, state} ->
        case Native.beam_worker_ready(worker.native, worker.uid) do
          :ok -> loop(worker, state)
          :not_wanted -> terminate_adapter(worker, :shutdown, state)
        end

      {:failed, message} ->
        # The owner reports the reason to the native pool, which retries with back-off.
        exit({:snakepit_init_failed, message})
    end
  end

  defp init_adapter(adapter, opts) do
    if function_exported?(adapter, :init, 1) do
      case adapter.init(opts) do
        {:ok, state} -> {:ok, state}
        :ok -> {:ok, nil}
        {:error, reason} -> {:failed, "init/1 returned {:error, #{inspect(reason)}}"}
        other -> {:failed, "init/1 returned #{inspect(other)}; expected {:ok, state}"}
      end
    else
      {:ok, nil}
    end
  catch
    kind, reason -> {:failed, "init/1 failed: " <> Exception.format(kind, reason, __STACKTRACE__)}
  end

  defp loop(worker, state) do
    receive do
      {:snakepit_request, json} ->
        handle_request(worker, json)
        loop(worker, state)

      {:snakepit_health_check, id} ->
        Native.beam_worker_reply(worker.native, worker.slot, worker.uid, id, {:ok, nil})
        loop(worker, state)

      {:snakepit_cancel, _id} ->
        loop(worker, state)

      :snakepit_close ->
        terminate_adapter(worker, :shutdown, state)

      # Nothing else is meant for this process; dropped so the mailbox cannot grow.
      _other ->
        loop(worker, state)
    end
  end

  defp handle_request(worker, json) do
    decoded =
      if byte_size(json) > @dirty_decode_bytes,
        do: Native.json_decode_dirty(json),
        else: Native.json_decode(json)

    # The native pool framed it: it always decodes, with an id and a command.
    {:ok, %{"id" => id, "command" => command} = request} = decoded
    opts = [worker_id: worker.id, session_id: request["session_id"]]
    answer = run(worker.adapter, command, request["args"] || %{}, opts)
    Native.beam_worker_reply(worker.native, worker.slot, worker.uid, id, answer)
  end

  # `{:ok, result}` or `{:error, {type, message, traceback}}`, as a Python worker's reply.
  defp run(adapter, command, args, opts) do
    case adapter.execute(command, args, opts) do
      {:ok, result} ->
        {:ok, result}

      {:error, reason} ->
        {:error, {"AdapterError", text(reason), nil}}

      other ->
        {:error,
         {"BadReturn",
          "execute/3 returned #{inspect(other)}; expected {:ok, result} or {:error, reason}",
          nil}}
    end
  rescue
    error in FunctionClauseError ->
      if error.module == adapter and error.function == :execute and error.arity == 3,
        do: {:error, {"UnknownCommand", "unknown command #{inspect(command)}", nil}},
        else: exception_answer(error, __STACKTRACE__)

    error ->
      exception_answer(error, __STACKTRACE__)
  catch
    :throw, value ->
      {:error,
       {"throw", "execute/3 threw #{inspect(value)}", Exception.format_stacktrace(__STACKTRACE__)}}
  end

  defp exception_answer(error, stacktrace) do
    {:error,
     {inspect(error.__struct__), text(Exception.message(error)),
      text(Exception.format(:error, error, stacktrace))}}
  end

  # Error texts cross into Rust as UTF-8 strings.
  defp text(reason) when is_binary(reason),
    do: if(String.valid?(reason), do: reason, else: inspect(reason))

  defp text(reason), do: inspect(reason)

  defp terminate_adapter(worker, reason, state) do
    if function_exported?(worker.adapter, :terminate, 2),
      do: worker.adapter.terminate(reason, state)

    :ok
  catch
    kind, error ->
      Logger.error(
        "terminate/2 of #{inspect(worker.adapter)} failed: " <>
          Exception.format(kind, error, __STACKTRACE__)
      )
  end
end
