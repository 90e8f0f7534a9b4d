defmodule Snakepit.Stream do
  @moduledoc """
  Consuming a streamed request in the process that submitted it: chunks in order, credit for
  the worker as they are taken, halting. `Snakepit.execute_stream/4` (a callback per chunk) and
  `Snakepit.stream/3` (a lazy `Enumerable`) are both built on it.

  The native pool sends each chunk straight to the consumer's mailbox as `{tag, :chunk, json,
  marks}`, then `{tag, :done}` or `{tag, :error, error}` (native/snakepit_rs/src/stream.rs).
  The worker may run at most a window W of chunks ahead of the consumer (the pool's
  `:stream_window`): the consumer acknowledges every `max(1, div(W, 2))` chunks it took, each
  acknowledgement becoming a credit frame to the worker, so the mailbox never holds more than W
  chunks however slow the consumer is. Acknowledging before waiting for the next chunk keeps
  the two from waiting on each other: fewer than W chunks are ever taken and not acknowledged.

  With `:telemetry` loaded, the consuming process emits `[:snakepit, :stream, :start]`,
  `[:snakepit, :stream, :credit_stall]` (a chunk that used up the window: the worker now waits
  for this consumer) and `[:snakepit, :stream, :stop]` (see `Snakepit.Telemetry`).
  """

  alias Snakepit.{Call, Error, Native, Telemetry}
  alias Snakepit.Native.Gate

  @enforce_keys [:native, :tag, :id, :ack_every, :wait, :details]
  defstruct [:native, :tag, :id, :ack_every, :wait, :details, :span, taken: 0, chunks: 0]

  @typedoc "A stream being consumed."
  @type t :: %__MODULE__{}

  @typedoc "A chunk's marks: `nil`, or `{is_final, metadata}` of upstream's chunk objects."
  @type marks :: nil | {boolean(), map() | nil}

  @doc """
  Submits `command` as a stream from the calling process, which then consumes it with
  `next/1` and, to stop early, `halt/1`. `opts` are those of `Snakepit.execute_stream/4`.
  """
  @spec open(String.t(), Call.args(), keyword()) :: {:ok, t()} | {:error, Error.t()}
  def open(command, args, opts) do
    started = System.monotonic_time()

    with {:ok, stream} <- Call.submit_stream(command, args, opts) do
      {:ok,
       %__MODULE__{
         native: stream.native,
         tag: stream.tag,
         id: stream.id,
         ack_every: max(1, div(stream.window, 2)),
         wait: stream.wait,
         details: stream.details,
         span: start_span(started, stream.details)
       }}
    end
  end

  @doc """
  The next chunk, as the term its JSON decodes to (for upstream's chunk objects, their
  `data`) with its marks; `:done` after the last one; or the error that ended the stream
  (after the chunks before it).
  """
  @spec next(t()) :: {:chunk, term(), marks(), t()} | :done | {:error, Error.t()}
  def next(%__MODULE__{taken: taken, ack_every: every} = stream) when taken >= every do
    :ok = Native.pool_stream_ack(stream.native, stream.id, taken)
    next(%{stream | taken: 0})
  end

  def next(%__MODULE__{tag: tag} = stream) do
    receive do
      {^tag, :chunk, json, marks} -> chunk(stream, json, marks)
      {^tag, :chunk_stall, json, marks} -> stream |> stalled() |> chunk(json, marks)
      {^tag, :done} -> stop(stream, :done)
      {^tag, :error, error} -> stop(stream, {:error, error(stream, Gate.error(error))})
    after
      stream.wait -> check_deadline(stream)
    end
  end

  @doc """
  Stops the stream: its worker is sent a cancel (the tool stops, its generator's `finally`
  runs) and goes back to the pool once it has answered; no message of the stream is left in
  the mailbox. Harmless on a stream that ended.
  """
  @spec halt(t()) :: :ok
  def halt(%__MODULE__{} = stream) do
    halt_native(stream)
    stop(stream, :ok)
  end

  # Called only on a stream whose end this process has not received. `:ended`: the stream had
  # its outcome already (its worker answered, or a timeout ended it) and its last message is
  # in the mailbox or about to be: it is awaited, so that none is left behind.
  defp halt_native(stream) do
    case Native.pool_stream_halt(stream.native, stream.id) do
      :halted -> :ok
      :ended -> await_end(stream.tag)
    end

    flush(stream.tag)
  end

  defp await_end(tag) do
    receive do
      {^tag, :done} -> :ok
      {^tag, :error, _} -> :ok
    after
      # Sent right after the reply was taken; the bound only guards against a lost message.
      5_000 -> :ok
    end
  end

  @doc """
  A lazy `Enumerable` of `command`'s chunks (see `Snakepit.stream/3`): submitted when the
  enumeration starts, halted when it stops early; an error raises `Snakepit.Error`.
  """
  @spec resource(String.t(), Call.args(), keyword()) :: Enumerable.t()
  def resource(command, args, opts) do
    Stream.resource(
      fn -> open!(command, args, opts) end,
      fn
        :ended ->
          {:halt, :ended}

        stream ->
          case next(stream) do
            {:chunk, value, _marks, stream} -> {[value], stream}
            :done -> {:halt, :ended}
            {:error, error} -> raise error
          end
      end,
      fn
        :ended -> :ok
        stream -> halt(stream)
      end
    )
  end

  defp open!(command, args, opts) do
    case open(command, args, opts) do
      {:ok, stream} -> stream
      {:error, error} -> raise error
    end
  end

  defp chunk(stream, json, marks) do
    with {:ok, value} <- Call.decode_json(json),
         {:ok, marks} <- decode_marks(marks) do
      {:chunk, value, marks, %{stream | taken: stream.taken + 1, chunks: stream.chunks + 1}}
    else
      {:error, error} ->
        halt_native(stream)
        stop(stream, {:error, error(stream, error)})
    end
  end

  defp decode_marks(nil), do: {:ok, nil}
  defp decode_marks({is_final, nil}), do: {:ok, {is_final, nil}}

  defp decode_marks({is_final, json}) do
    with {:ok, metadata} <- Call.decode_json(json), do: {:ok, {is_final, metadata}}
  end

  # No chunk within the wait: the native pool says atomically whether the stream timed out
  # (it is then withdrawn: nothing more will come), has time left, or has its end on the way.
  defp check_deadline(stream) do
    case Native.pool_check_deadline(stream.native, stream.id) do
      {:wait, more} ->
        next(%{stream | wait: more})

      {:expired, error, _queue_us, _run_us} ->
        flush(stream.tag)
        stop(stream, {:error, error(stream, Gate.error(error))})

      :replied ->
        next(%{stream | wait: :infinity})
    end
  end

  defp error(stream, %Error{details: details} = error),
    do: %{error | details: Map.merge(stream.details, details)}

  ## Telemetry (nothing of it when `:telemetry` is not loaded: `span` is nil)

  defp start_span(started, details) do
    if Telemetry.enabled?() do
      metadata = %{
        pool: details[:pool],
        command: details[:command],
        session_id: details[:session_id]
      }

      measurements = %{monotonic_time: started, system_time: System.system_time()}
      Telemetry.execute([:snakepit, :stream, :start], measurements, metadata)
      {started, metadata}
    end
  end

  defp stalled(%{span: nil} = stream), do: stream

  defp stalled(%{span: {_, metadata}} = stream) do
    measurements = %{chunks: stream.chunks + 1}
    Telemetry.execute([:snakepit, :stream, :credit_stall], measurements, metadata)
    stream
  end

  # The stream ended with `result` (`:done`, `{:error, error}`, or `:ok` for a halt); returns it.
  defp stop(%{span: nil}, result), do: result

  defp stop(%{span: {started, metadata}} = stream, result) do
    now = System.monotonic_time()

    outcome =
      case result do
        :done -> :done
        :ok -> :halted
        {:error, %Error{reason: reason}} -> reason
      end

    measurements = %{duration: now - started, chunks: stream.chunks, monotonic_time: now}

    Telemetry.execute(
      [:snakepit, :stream, :stop],
      measurements,
      Map.put(metadata, :outcome, outcome)
    )

    result
  end

  defp flush(tag) do
    receive do
      {^tag, :chunk, _, _} -> flush(tag)
      {^tag, :chunk_stall, _, _} -> flush(tag)
      {^tag, :done} -> flush(tag)
      {^tag, :error, _} -> flush(tag)
    after
      0 -> :ok
    end
  end
end
