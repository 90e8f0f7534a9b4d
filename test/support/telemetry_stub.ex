defmodule :telemetry do
  @moduledoc """
  A TEST DOUBLE for the Hex package `:telemetry`, which cannot be installed on these machines
  (no Hex). It is compiled only with the tests (`test/support`, and loaded by
  `bench/telemetry.exs`), never shipped: in an application, the real `:telemetry` is what
  `Snakepit.Telemetry` finds loaded.

  It keeps the real package's semantics as far as snakepit_rs and its tests use them:
  `attach/4` and `attach_many/4` register a handler under a unique id
  (`{:error, :already_exists}` otherwise), `detach/1` removes it, `execute/3` calls every
  handler attached to the event with `(event, measurements, metadata, config)` in the
  calling process, and a handler that raises is detached (as the real one does, without its
  log line). Like the real one, handlers live in the ETS table `:telemetry_handler_table`
  keyed by event name (a duplicate bag of `{:handler, id, event, function, config}`), which
  `Snakepit.Telemetry` looks into to skip events nobody handles. A process of its own owns the
  table, so that it outlives the test that attached first.
  """

  @table :telemetry_handler_table

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
    table = table()

    :global.trans(
      {@table, self()},
      fn ->
        if :ets.match_object(table, {:handler, id, :_, :_, :_}) != [] do
          {:error, :already_exists}
        else
          :ets.insert(table, for(event <- events, do: {:handler, id, event, function, config}))
          :ok
        end
      end,
      [node()]
    )
  end

  @doc "Detaches the handler `id`."
  @spec detach(handler_id()) :: :ok | {:error, :not_found}
  def detach(id) do
    table = table()

    :global.trans(
      {@table, self()},
      fn ->
        if :ets.match_object(table, {:handler, id, :_, :_, :_}) == [] do
          {:error, :not_found}
        else
          :ets.match_delete(table, {:handler, id, :_, :_, :_})
          :ok
        end
      end,
      [node()]
    )
  end

  @doc "Calls every handler attached to `event`."
  @spec execute(event_name(), map(), map()) :: :ok
  def execute(event, measurements, metadata) do
    for {:handler, id, _, function, config} <- :ets.lookup(table(), event) do
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
    for {:handler, id, event, function, config} <- :ets.tab2list(table()),
        List.starts_with?(event, prefix),
        do: %{id: id, event_name: event, function: function, config: config}
  end

  # The table, created with its owner the first time it is needed.
  defp table do
    case :ets.whereis(@table) do
      :undefined -> create_table()
      _ -> @table
    end
  end

  defp create_table do
    :global.trans(
      {@table, self()},
      fn ->
        if :ets.whereis(@table) == :undefined do
          caller = self()

          spawn(fn ->
            :ets.new(@table, [:duplicate_bag, :public, :named_table, {:keypos, 3}])
            send(caller, :created)
            Process.sleep(:infinity)
          end)

          receive do: (:created -> :ok)
        end
      end,
      [node()]
    )

    @table
  end
end
