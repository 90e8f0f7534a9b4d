defmodule Snakepit.StreamingTest.Beam do
  @moduledoc false
  # An Elixir adapter: its workers are BEAM processes.
  @behaviour Snakepit.Adapter
  def execute("ping", _args, _opts), do: {:ok, %{}}
  def init(_config), do: {:ok, %{}}
  def terminate(_reason, _state), do: :ok
end

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

  # A message of a stream: `{tag, :chunk | :chunk_stall | :done | :error, ...}`.
  defp stream_message?(message) when is_tuple(message) and tuple_size(message) >= 2,
    do: elem(message, 1) in [:chunk, :chunk_stall, :done, :error]

  defp stream_message?(_message), do: false

  defp start_pool(opts \\ []) do
    TestPool.start!(Keyword.merge([size: 1, adapter_args: @adapter_args], opts))
  end

  # Waits until a worker of `pool` printed `streaming_adapter: <text>`.
  defp assert_worker_says(pool, text),
    do: Snakepit.LogForwarder.assert_worker_logged(pool, "] streaming_adapter: " <> text)

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

  describe "placement" do
    test "two concurrent streams run on different workers" do
      pool = start_pool(size: 2)
      test = self()

      # Each holds its worker (its callback waits) until both have started.
      tasks =
        for name <- [:a, :b] do
          Task.async(fn ->
            Snakepit.execute_stream(
              "forever",
              %{},
              fn %{"i" => 0} ->
                send(test, {:started, name, self()})
                receive(do: (:go -> :halt))
              end,
              pool: pool
            )
          end)
        end

      assert_receive {:started, _, first}
      assert_receive {:started, _, second}
      assert %{busy: 2, streams: 2} = Snakepit.get_stats(pool)
      Enum.each([first, second], &send(&1, :go))
      assert Enum.map(tasks, &Task.await/1) == [:ok, :ok]
    end

    test "a stream in a session lands on the session's worker" do
      pool = start_pool(size: 3)
      {:ok, %{"pid" => home}} = Snakepit.execute_in_session("s1", "whoami", %{}, pool: pool)

      for _ <- 1..5 do
        assert :ok =
                 Snakepit.execute_in_session_stream(
                   "s1",
                   "count",
                   %{n: 2},
                   fn _ -> :ok end,
                   pool: pool,
                   affinity: :strict_queue
                 )

        assert {:ok, %{"pid" => ^home}} =
                 Snakepit.execute_in_session("s1", "whoami", %{}, pool: pool)
      end

      %{sessions: 1, streams: 5} = Snakepit.get_stats(pool)

      assert {:error, %Error{reason: :invalid_session_id}} =
               Snakepit.execute_in_session_stream("no spaces", "count", %{n: 1}, & &1, pool: pool)
    end
  end

  describe "halting" do
    test "a callback returning :halt closes the generator (its finally runs); the worker serves on" do
      pool = start_pool()
      os_pid = TestPool.only_worker_pid(pool)
      test = self()

      assert :ok =
               Snakepit.execute_stream(
                 "forever",
                 %{},
                 fn %{"i" => i} ->
                   send(test, {:chunk, i})
                   if i == 5, do: :halt, else: :ok
                 end,
                 pool: pool
               )

      for i <- 0..5, do: assert_received({:chunk, ^i})
      refute_received {:chunk, 6}
      assert_worker_says(pool, "forever stopped")
      assert {:ok, %{"pid" => ^os_pid}} = Snakepit.execute("whoami", %{}, pool: pool)
      stats = Snakepit.get_stats(pool)
      assert %{halted: 1, worker_crashes: 0, workers_killed: 0} = stats
      assert identity_holds?(stats)
    end

    test "{:halt, reason} stops the stream with an error; a raising callback too" do
      pool = start_pool()

      assert {:error, %Error{reason: :enough, details: %{command: "forever"}}} =
               Snakepit.execute_stream("forever", %{}, fn _ -> {:halt, :enough} end, pool: pool)

      assert_worker_says(pool, "forever stopped")

      assert {:error, %Error{reason: :callback_exception} = error} =
               Snakepit.execute_stream("forever", %{}, fn _ -> raise "boom" end, pool: pool)

      assert error.message =~ "boom"
      assert {:callback_exception, %RuntimeError{}, [_ | _]} = error.details.reason
      assert_worker_says(pool, "forever stopped")
      # The worker answers the cancel after the generator's finally: then it serves on.
      assert {:ok, _} = Snakepit.execute("whoami", %{}, pool: pool)
      assert %{halted: 2, worker_crashes: 0} = Snakepit.get_stats(pool)
    end

    test "Stream.take/2 on Snakepit.stream/3 halts the stream on the worker" do
      pool = start_pool()
      os_pid = TestPool.only_worker_pid(pool)

      assert Snakepit.stream("forever", %{}, pool: pool) |> Stream.take(3) |> Enum.to_list() ==
               [%{"i" => 0}, %{"i" => 1}, %{"i" => 2}]

      assert_worker_says(pool, "forever stopped")
      assert {:ok, %{"pid" => ^os_pid}} = Snakepit.execute("whoami", %{}, pool: pool)

      # Nothing of the stream is left in the mailbox.
      refute_received {_, :chunk, _, _}
      assert Enum.to_list(Snakepit.stream("count", %{n: 4}, pool: pool)) == [0, 1, 2, 3]

      assert Snakepit.stream("count", %{n: 5}, pool: pool) |> Enum.map(&(&1 * 2)) |> Enum.sum() ==
               20
    end

    test "halting a stream just as it ends leaves none of its messages behind" do
      # Taking all 3 chunks of a 3-chunk stream halts it while its worker is sending the end:
      # the end may already be taken by the reader and on its way; it must not be left behind.
      pool = start_pool(size: 2)

      for _ <- 1..200 do
        assert Snakepit.stream("count", %{n: 3}, pool: pool) |> Enum.take(3) == [0, 1, 2]
        {:messages, messages} = Process.info(self(), :messages)
        assert [] = Enum.filter(messages, &stream_message?/1)
      end
    end

    test "a caller that dies mid-stream halts it: the generator stops, the worker is freed" do
      pool = start_pool()
      os_pid = TestPool.only_worker_pid(pool)
      test = self()

      caller =
        spawn(fn ->
          Snakepit.execute_stream(
            "forever",
            %{},
            fn _ ->
              send(test, :streaming)
              receive(do: (:never -> :ok))
            end,
            pool: pool
          )
        end)

      assert_receive :streaming
      Process.exit(caller, :kill)
      assert_worker_says(pool, "forever stopped")
      assert {:ok, %{"pid" => ^os_pid}} = Snakepit.execute("whoami", %{}, pool: pool)
      assert %{halted: 1} = Snakepit.get_stats(pool)
    end
  end

  describe "failures" do
    test "a tool raising mid-stream: the chunks before it, then the Python error" do
      pool = start_pool()
      {result, chunks} = collect("fail_after", %{n: 3}, pool: pool)
      assert Enum.map(chunks, & &1["data"]) == [0, 1, 2]
      assert {:error, %Error{reason: :worker_error, category: :python_error} = error} = result
      assert error.message =~ "ValueError: failed after 3 chunks"
      assert error.python_traceback =~ "fail_after"
      assert %Snakepit.Error.ValueError{} = error.details.reason

      assert_raise Error, ~r/failed after 2 chunks/, fn ->
        Enum.to_list(Snakepit.stream("fail_after", %{n: 2}, pool: pool))
      end
    end

    test "a worker killed mid-stream: the chunks before it, then :worker_crashed; replaced" do
      pool = start_pool()
      victim = TestPool.only_worker_pid(pool)
      test = self()

      result =
        Snakepit.execute_stream(
          "forever",
          %{},
          fn %{"i" => i} ->
            send(test, {:chunk, i})
            if i == 3, do: TestPool.os_kill(victim, "KILL")
            :ok
          end,
          pool: pool
        )

      assert {:error, %Error{reason: :worker_crashed}} = result
      for i <- 0..3, do: assert_received({:chunk, ^i})

      assert_receive {:snakepit_pool_event, ^pool, {:worker_ready, _, replacement}}
                     when replacement != victim

      assert {:ok, %{"pid" => ^replacement}} = Snakepit.execute("whoami", %{}, pool: pool)
      assert %{requests_lost: 1, worker_crashes: 1} = Snakepit.get_stats(pool)
    end

    test "the whole stream's :timeout: cancelled, :timeout, the worker kept" do
      pool = start_pool(cancel_grace: 30_000)
      os_pid = TestPool.only_worker_pid(pool)

      # The callback holds the stream (the worker waits for credit) until the timeout has
      # cancelled the tool.
      result =
        Snakepit.execute_stream(
          "forever",
          %{},
          fn
            %{"i" => 0} -> assert_worker_says(pool, "forever stopped")
            _ -> :ok
          end,
          pool: pool,
          timeout: 300
        )

      assert {:error, %Error{reason: :timeout, category: :timeout} = error} = result
      assert error.message =~ "did not finish within 300 ms"
      assert {:ok, %{"pid" => ^os_pid}} = Snakepit.execute("whoami", %{}, pool: pool)
      assert %{timeouts: 1} = Snakepit.get_stats(pool)
    end

    test ":chunk_timeout: a worker silent for longer is cancelled, :timeout" do
      pool = start_pool(cancel_grace: 30_000)
      os_pid = TestPool.only_worker_pid(pool)

      {result, chunks} =
        collect("count_slowly", %{n: 3, delay_ms: 1_000}, pool: pool, chunk_timeout: 100)

      assert chunks == []
      assert {:error, %Error{reason: :timeout} = error} = result
      assert error.message =~ "sent nothing for 100 ms (:chunk_timeout)"
      # The tool stops once its sleep returns: the worker is kept.
      assert {:ok, %{"pid" => ^os_pid}} = Snakepit.execute("whoami", %{}, pool: pool)
      # Steady chunks keep a stream alive however long it runs.
      assert :ok =
               Snakepit.execute_stream("count_slowly", %{n: 3, delay_ms: 50}, fn _ -> :ok end,
                 pool: pool,
                 chunk_timeout: 2_000
               )
    end
  end

  describe "mismatches" do
    test "streaming a tool that does not stream: :streaming_not_supported, nothing runs" do
      pool = start_pool()
      {result, chunks} = collect("plain", %{}, pool: pool)
      assert chunks == []
      assert {:error, %Error{reason: :streaming_not_supported, category: :validation}} = result
      assert {:ok, %{"plain" => true}} = Snakepit.execute("plain", %{}, pool: pool)
    end

    test "a streaming tool through execute/3: the worker collects its chunks into a list" do
      pool = start_pool()
      assert {:ok, [0, 1, 2]} = Snakepit.execute("count", %{n: 3}, pool: pool)

      assert {:ok, [%{"step" => 1, "total" => 2}, %{"step" => 2, "total" => 2}]} =
               Snakepit.execute("upstream_chunks", %{n: 2}, pool: pool)
    end

    test "an unknown command, bad args, a bad callback" do
      pool = start_pool()

      assert {:error, %Error{reason: :unknown_command}} =
               Snakepit.execute_stream("nope", %{}, fn _ -> :ok end, pool: pool)

      assert {:error, %Error{reason: :invalid_args}} =
               Snakepit.execute_stream("count", %{n: self()}, fn _ -> :ok end, pool: pool)

      assert {:error, %Error{reason: :invalid_option}} =
               Snakepit.execute_stream("count", %{n: 1}, fn _ -> :ok end, pool: pool, window: 3)

      assert_raise ArgumentError, ~r/function of one argument, got: :nope/, fn ->
        Snakepit.execute_stream("count", %{n: 1}, :nope, pool: pool)
      end
    end
  end

  describe "back-pressure" do
    @tag :slow
    test "100,000 chunks into a slow consumer: its mailbox never holds more than the window" do
      # Large enough that the worker rarely waits between the pauses: each wait logs a line
      # (SNAKEPIT_LOG_LEVEL=debug), and tens of thousands of them would make Logger drop the
      # lines other tests running at the same time wait for.
      window = 1024
      pool = start_pool(stream_window: window, env: [{"SNAKEPIT_LOG_LEVEL", "debug"}])
      test = self()
      pauses = [10_000, 50_000, 90_000]

      # The consumer stops at each pause until the worker says it waits for credit.
      consumer =
        Task.async(fn ->
          Snakepit.stream("count", %{n: 100_000}, pool: pool)
          |> Enum.reduce({0, 0}, fn i, {max_queue, _} ->
            {:message_queue_len, queue} = Process.info(self(), :message_queue_len)

            if i in pauses do
              send(test, {:paused, i, :erlang.memory(:total)})
              receive(do: (:go -> :ok))
            end

            {max(max_queue, queue), i}
          end)
        end)

      memory =
        for i <- pauses do
          assert_receive {:paused, ^i, memory}
          assert_worker_waits_for_credit(pool)
          send(consumer.pid, :go)
          memory
        end

      assert {max_queue, 99_999} = Task.await(consumer, 120_000)
      assert max_queue <= window
      assert List.last(memory) - hd(memory) < 20_000_000
      assert %{chunks: 100_000, completed: 1} = Snakepit.get_stats(pool)
    end
  end

  # Waits for the bridge's debug line saying a stream waits for credit (its window is used up).
  defp assert_worker_waits_for_credit(pool),
    do: Snakepit.LogForwarder.assert_worker_logged(pool, &(&1 =~ "waits for credit after"))

  describe "other workers" do
    test "the Rust test worker's streamed count keeps to the window it is given" do
      pool = TestPool.start_test_workers!(size: 1, stream_window: 4)
      test = self()

      assert :ok =
               Snakepit.execute_stream(
                 "count",
                 %{n: 200},
                 fn chunk -> send(test, {:chunk, chunk}) end,
                 pool: pool
               )

      for i <- 0..199 do
        assert_received {:chunk, %{"i" => ^i, "credited" => credited}}
        assert i < 4 + credited
      end

      assert_received {:chunk, %{"is_final" => true}}
      assert Enum.take(Snakepit.stream("count", %{n: 1_000}, pool: pool), 2) |> length() == 2
      assert {:ok, %{}} = Snakepit.execute("ping", %{}, pool: pool)
    end

    test "a pool of BEAM workers cannot stream, as upstream's non-gRPC adapters" do
      pool = TestPool.start_test_workers!(size: 1, adapter_module: Snakepit.StreamingTest.Beam)

      assert {:error, %Error{reason: :streaming_not_supported, category: :validation} = error} =
               Snakepit.execute_stream("ping", %{}, fn _ -> :ok end, pool: pool)

      assert error.message =~ "Streaming not supported by adapter"
    end
  end

  defp wrap(collected), do: collected

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
