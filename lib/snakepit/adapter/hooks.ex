defmodule Snakepit.Adapter.Hooks do
  @moduledoc """
  Upstream's request-path callbacks — `command_timeout/2`, `prepare_args/2`,
  `process_response/2` (see `Snakepit.Adapter`) — run in the caller's process by
  `Snakepit.Call`.

  A pool whose adapter defines any of them is registered here by its native pool when it
  starts; `lookup/1` is then the only cost a call pays for them, and a pool without them pays
  just that one (missing) lookup.
  """

  alias Snakepit.Error

  @callbacks [command_timeout: 2, prepare_args: 2, process_response: 2]

  @typedoc "What `Snakepit.Call` keeps to finish a request: `{adapter, command}`, or `nil`."
  @type finish :: {module(), String.t()} | nil

  @doc "Registers `adapter`'s callbacks for the native pool `native`, if it defines any."
  @spec register(reference(), module()) :: :ok
  def register(native, adapter) do
    if Enum.any?(@callbacks, fn {name, arity} -> function_exported?(adapter, name, arity) end),
      do: :persistent_term.put(key(native), adapter)

    :ok
  end

  @doc "Forgets the callbacks of the native pool `native` (a stopped pool)."
  @spec unregister(reference()) :: :ok
  def unregister(native) do
    if lookup(native), do: :persistent_term.erase(key(native))
    :ok
  end

  @doc "The adapter whose callbacks apply to the native pool `native`, or `nil`."
  @spec lookup(reference()) :: module() | nil
  def lookup(native), do: :persistent_term.get(key(native), nil)

  @doc """
  Before submitting: the args to send and the execution timeout (`timeout` is the call's
  `:timeout`, `nil` when not given; `default` the pool's), and what `finish/2` needs later.
  """
  @spec prepare(module() | nil, String.t(), map(), timeout() | nil, timeout()) ::
          {:ok, map(), timeout(), finish()} | {:error, Error.t()}
  def prepare(nil, _command, args, timeout, default), do: {:ok, args, timeout || default, nil}

  def prepare(adapter, command, args, timeout, default) do
    with {:ok, args} <- prepare_args(adapter, command, args) do
      timeout = timeout || command_timeout(adapter, command, args) || default

      finish = if function_exported?(adapter, :process_response, 2), do: {adapter, command}

      {:ok, args, timeout, finish}
    end
  end

  @doc "After the reply: applies `process_response/2` to a successful result."
  @spec finish(finish(), {:ok, term()} | {:error, Error.t()}) ::
          {:ok, term()} | {:error, Error.t()}
  def finish({adapter, command}, {:ok, result}) do
    case adapter.process_response(command, result) do
      {:ok, _} = ok ->
        ok

      {:error, reason} ->
        {:error,
         error(
           :invalid_result,
           adapter,
           "process_response/2",
           "refused the result of " <>
             "#{inspect(command)}: #{inspect(reason)}",
           reason
         )}

      other ->
        {:error,
         error(
           :invalid_result,
           adapter,
           "process_response/2",
           "returned #{inspect(other)}; " <>
             "expected {:ok, result} or {:error, reason}",
           other
         )}
    end
  catch
    kind, reason ->
      {:error,
       error(
         :invalid_result,
         adapter,
         "process_response/2",
         caught(kind, reason),
         reason
       )}
  end

  def finish(_finish, result), do: result

  defp prepare_args(adapter, command, args) do
    if function_exported?(adapter, :prepare_args, 2) do
      case adapter.prepare_args(command, args) do
        prepared when is_map(prepared) ->
          {:ok, prepared}

        other ->
          {:error,
           error(
             :invalid_args,
             adapter,
             "prepare_args/2",
             "returned #{inspect(other)}; " <>
               "expected a map",
             other
           )}
      end
    else
      {:ok, args}
    end
  catch
    kind, reason ->
      {:error,
       error(
         :invalid_args,
         adapter,
         "prepare_args/2",
         caught(kind, reason),
         reason
       )}
  end

  # As upstream: a raise, or a value that is no timeout, falls back to the pool's.
  defp command_timeout(adapter, command, args) do
    if function_exported?(adapter, :command_timeout, 2) do
      case adapter.command_timeout(command, args) do
        ms when is_integer(ms) and ms > 0 -> ms
        :infinity -> :infinity
        _ -> nil
      end
    end
  catch
    _kind, _reason -> nil
  end

  # What a callback did instead of returning: raised, threw or exited.
  defp caught(:error, reason),
    do: "raised: " <> Exception.message(Exception.normalize(:error, reason, []))

  defp caught(:throw, value), do: "threw: #{inspect(value)}"
  defp caught(:exit, reason), do: "exited: #{inspect(reason)}"

  defp error(reason, adapter, callback, what, cause),
    do:
      Error.new(reason, "#{callback} of #{inspect(adapter)} #{what}", %{
        adapter: adapter,
        reason: cause
      })

  defp key(native), do: {__MODULE__, native}
end
