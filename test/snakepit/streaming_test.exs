defmodule Snakepit.StreamingTest do
  # Streams end to end on real Python workers running test/support/python/streaming_adapter.py,
  # whose tools print `streaming_adapter: <tool> <what>` lines (the pool logs them): tests wait
  # for those lines, and for pool events, instead of for time.
  use ExUnit.Case, async: true

  alias Snakepit.{Error, TestPool}

  @adapter_args ["--adapter", "streaming_adapter.StreamingAdapter"]

  setup do
    Snakepit.LogForwarder.forward_to_self()
    :ok
  end

  defp start_pool(opts \\ []) do
    TestPool.start!(Keyword.merge([size: 1, adapter_args: @adapter_args], opts))
  end

  # Waits until a worker of `pool` printed `streaming_adapter: <text>`.
  defp assert_worker_says(pool, text) do
    prefix = "#{pool}_worker_"

    receive do
      {:log, _level, line, %{snakepit_worker: worker}} ->
        if String.starts_with?("#{worker}", prefix) and
             String.ends_with?(line, "] streaming_adapter: " <> text),
           do: :ok,
           else: assert_worker_says(pool, text)
    after
      15_000 -> flunk("no worker of #{inspect(pool)} printed #{inspect(text)}")
    end
  end

  # Every chunk the callback got, in order.
  defp collect(command, args, opts) do
    test = self()
    ref = make_ref()
    result = Snakepit.execute_stream(command, args, &send(test, {ref, &1}), opts)
    {result, drain(ref, [])}
  end

  defp drain(ref, acc) do
    receive do
      {^ref, chunk} -> drain(ref, [chunk | acc])
    after
      0 -> Enum.reverse(acc)
    end
  end

  defp identity_holds?(stats) do
    stats.requests ==
      stats.completed + stats.errors + stats.callers_gone + stats.halted + stats.in_flight +
        stats.queued
  end

  describe "execute_stream/4" do
    test "calls the callback once per chunk, in order, with upstream's shapes and final marker" do
      pool = start_pool()
      {result, chunks} = collect("count", %{n: 3}, pool: pool)
      assert result == :ok

      assert chunks == [
               %{"data" => 0, "is_final" => false},
               %{"data" => 1, "is_final" => false},
               %{"data" => 2, "is_final" => false},
               %{"is_final" => true}
             ]
    end

    test "10,000 chunks arrive in order" do
      pool = start_pool()
      {:ok, counter} = Agent.start_link(fn -> 0 end)

      assert :ok =
               Snakepit.execute_stream(
                 "count",
                 %{n: 10_000},
                 fn
                   %{"data" => i} -> :ok = Agent.update(counter, fn ^i -> i + 1 end)
                   %{"is_final" => true} -> :ok
                 end,
                 pool: pool
               )

      assert Agent.get(counter, & &1) == 10_000
      stats = Snakepit.get_stats(pool)
      assert %{streams: 1, chunks: 10_000, completed: 1} = stats
      assert identity_holds?(stats)
    end

    test "upstream's StreamChunk objects: is_final as marked, metadata as _metadata, no extra end" do
      pool = start_pool()
      {:ok, chunks} = wrap(collect("upstream_chunks", %{n: 2, metadata: true}, pool: pool))

      assert chunks == [
               %{"step" => 1, "total" => 2, "is_final" => false, "_metadata" => %{"step" => "1"}},
               %{"step" => 2, "total" => 2, "is_final" => true, "_metadata" => %{"step" => "2"}}
             ]

      {:ok, chunks} = wrap(collect("upstream_chunks", %{n: 2}, pool: pool))
      assert List.last(chunks) == %{"step" => 2, "total" => 2, "is_final" => true}
      assert length(chunks) == 2
    end

    test "other shapes: maps as they are, async generators, iterators, a single value" do
      pool = start_pool()
      assert {:ok, [%{"i" => 0, "is_final" => false} | _]} = first(pool, "forever", %{})

      assert {:ok, chunks} = wrap(collect("async_count", %{n: 2}, pool: pool))
      assert Enum.map(chunks, &Map.get(&1, "data")) == [0, 1, nil]

      assert {:ok, chunks} = wrap(collect("iterate", %{n: 2}, pool: pool))
      assert Enum.map(chunks, &Map.get(&1, "data")) == [0, 1, nil]

      assert {:ok, [%{"x" => 1, "is_final" => false}, %{"is_final" => true}]} =
               wrap(collect("single", %{value: %{x: 1}}, pool: pool))

      # Strings are JSON text to upstream's callbacks (the bytes its worker sends).
      assert {:ok, [%{"data" => 42} | _]} = wrap(collect("single", %{value: "42"}, pool: pool))

      assert {:ok, [%{"raw_data_base64" => "aGk=", "is_final" => false} | _]} =
               wrap(collect("single", %{value: "hi"}, pool: pool))
    end
  end

  defp wrap({:ok, chunks}), do: {:ok, chunks}
  defp wrap({result, chunks}), do: {result, chunks}

  # The first chunk of a stream, halting it.
  defp first(pool, command, args) do
    test = self()

    :ok =
      Snakepit.execute_stream(
        command,
        args,
        fn chunk ->
          send(test, {:first, chunk})
          :halt
        end,
        pool: pool
      )

    assert_receive {:first, chunk}
    {:ok, [chunk]}
  end
end
