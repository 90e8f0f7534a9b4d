defmodule Snakepit.Stream.Callback do
  @moduledoc """
  `Snakepit.execute_stream/4`'s loop: one callback call per chunk, in order, in the calling
  process, each given the map upstream Snakepit v0.13 gives its callbacks (`payload/2`), and
  the callback's answer obeyed as upstream obeys it.
  """

  alias Snakepit.Error

  @doc """
  Streams `command` into `callback`. `:ok` after the last chunk (or when the callback returned
  `:halt`); `{:error, %Snakepit.Error{}}` when the stream failed (after the chunks before it)
  or the callback returned `{:halt, reason}` or raised.
  """
  @spec run(String.t(), Snakepit.Call.args(), (map() -> term()), keyword()) ::
          :ok | {:error, Error.t()}
  def run(command, args, callback, opts) when is_function(callback, 1) do
    with {:ok, stream} <- Snakepit.Stream.open(command, args, opts),
         do: feed(stream, callback, false)
  end

  def run(_command, _args, callback, _opts) do
    raise ArgumentError,
          "the callback of a stream must be a function of one argument, got: #{inspect(callback)}"
  end

  @doc """
  The map a callback receives for a chunk, as upstream v0.13 builds it from its `ToolChunk`:

    * the chunk's value when it is a map; `%{"data" => value}` for any other value; `%{}` for
      `nil`. A string is taken, as upstream takes the bytes its worker sends for one, as JSON
      text: a map or `%{"data" => value}` if it parses, `%{"raw_data_base64" => ...}` if not,
      `%{}` if empty;
    * `"is_final"`: whether the tool marked the chunk final (upstream's `StreamChunk`);
    * `"_metadata"`: the chunk's metadata (a map of strings), when it has some.
  """
  @spec payload(term(), Snakepit.Stream.marks()) :: map()
  def payload(value, marks) do
    {is_final, metadata} = marks || {false, nil}

    value
    |> base()
    |> Map.put("is_final", is_final)
    |> with_metadata(metadata)
  end

  defp base(nil), do: %{}
  defp base(map) when is_map(map), do: map
  defp base(""), do: %{}

  defp base(text) when is_binary(text) do
    case Snakepit.Call.decode_json(text) do
      {:ok, value} when is_map(value) -> value
      {:ok, value} -> %{"data" => value}
      {:error, _} -> %{"raw_data_base64" => Base.encode64(text)}
    end
  end

  defp base(value), do: %{"data" => value}

  defp with_metadata(payload, metadata) when is_map(metadata) do
    case Map.reject(metadata, fn {_key, value} -> is_nil(value) end) do
      cleaned when map_size(cleaned) > 0 -> Map.put(payload, "_metadata", cleaned)
      _ -> payload
    end
  end

  defp with_metadata(payload, _metadata), do: payload

  # Upstream ends a stream no chunk of which was marked final with an empty final chunk.
  defp feed(stream, callback, final_seen?) do
    case Snakepit.Stream.next(stream) do
      {:chunk, value, marks, stream} ->
        final? = match?({true, _}, marks)

        case call(callback, payload(value, marks), stream) do
          :cont -> feed(stream, callback, final_seen? or final?)
          ended -> ended
        end

      :done when final_seen? ->
        :ok

      :done ->
        case call(callback, %{"is_final" => true}, %{stream | id: nil}) do
          :cont -> :ok
          ended -> ended
        end

      {:error, _} = error ->
        error
    end
  end

  # Runs the callback once; a halt, an exception or an exit stops the stream on its worker.
  defp call(callback, payload, stream) do
    case callback.(payload) do
      :halt ->
        halt(stream)
        :ok

      {:halt, reason} ->
        halt(stream)
        {:error, Error.normalize_public_error(reason, stream.details)}

      _ ->
        :cont
    end
  rescue
    exception ->
      halt(stream)
      # Upstream's error: `{:callback_exception, exception, stacktrace}`, normalized.
      reason = {:callback_exception, exception, __STACKTRACE__}
      error = Error.normalize_public_error(reason, stream.details)
      message = "the callback raised: " <> Exception.format_banner(:error, exception)
      {:error, %{error | message: message}}
  catch
    kind, reason ->
      halt(stream)
      :erlang.raise(kind, reason, __STACKTRACE__)
  end

  # After the end (the empty final chunk) there is nothing to halt.
  defp halt(%{id: nil}), do: :ok
  defp halt(stream), do: Snakepit.Stream.halt(stream)
end
