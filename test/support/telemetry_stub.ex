defmodule :telemetry do
  @moduledoc """
  A TEST DOUBLE for the Hex package `:telemetry`, which cannot be installed on these machines
  (no Hex). It is compiled only with the tests (`test/support`), never shipped: in an
  application, the real `:telemetry` is what `Snakepit.Telemetry` finds loaded.

  It keeps the real package's semantics as far as snakepit_rs and its tests use them:
  `attach/4` and `attach_many/4` register a handler under a unique id
  (`{:error, :already_exists}` otherwise), `detach/1` removes it, `execute/3` calls every
  handler attached to the event with `(event, measurements, metadata, config)` in the
  calling process, and a handler that raises is detached (as the real one does, without its
  log line). Handlers live in `:persistent_term`, so `execute/3` with none attached costs a
  lookup, as the real one's ETS lookup does.
  """

  @key {__MODULE__, :handlers}

  @type handler_id :: term()
  @type event_name :: [atom(), ...]
  @type handler_function :: (event_name(), map(), map(), term() -> any())

  @doc "Attaches `function` to `event` under `id`."
  @spec attach(handler_id(), event_name(), handler_function(), term()) ::
          :ok | {:error, :already_exists}
  def attach(id, event, function, config), do: attach_many(id, [event], function, config)

  @doc "Attaches `function` to every event of `events` under `id`."
  @spec attach_many(handler_id(), [event_name()], handler_function(), term()) ::
          :ok | {:error, :already_exists}
  def attach_many(id, events, function, config) when is_function(function, 4) do
    :global.trans(
      {@key, self()},
      fn ->
        handlers = handlers()

        if Map.has_key?(handlers, id) do
          {:error, :already_exists}
        else
          :persistent_term.put(@key, Map.put(handlers, id, {events, function, config}))
        end
      end,
      [node()]
    )
  end

  @doc "Detaches the handler `id`."
  @spec detach(handler_id()) :: :ok | {:error, :not_found}
  def detach(id) do
    :global.trans(
      {@key, self()},
      fn ->
        handlers = handlers()

        if Map.has_key?(handlers, id) do
          :persistent_term.put(@key, Map.delete(handlers, id))
        else
          {:error, :not_found}
        end
      end,
      [node()]
    )
  end

  @doc "Calls every handler attached to `event`."
  @spec execute(event_name(), map(), map()) :: :ok
  def execute(event, measurements, metadata) do
    for {id, {events, function, config}} <- handlers(), event in events do
      try do
        function.(event, measurements, metadata, config)
      rescue
        _ -> detach(id)
      end
    end

    :ok
  end

  @doc "The handlers attached to events starting with `prefix`, as the real function lists them."
  @spec list_handlers([atom()]) :: [map()]
  def list_handlers(prefix) do
    for {id, {events, function, config}} <- handlers(),
        event <- events,
        List.starts_with?(event, prefix),
        do: %{id: id, event_name: event, function: function, config: config}
  end

  defp handlers, do: :persistent_term.get(@key, %{})
end
