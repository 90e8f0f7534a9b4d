# Streams: chunks per second for small chunks, and the time to the first chunk.
#
#     mix run bench/stream.exs
#
# 1. Throughput: one stream of small chunks (the integers 0..n-1, `count`) consumed by a no-op
#    callback (`Snakepit.execute_stream/4`) and by `Snakepit.stream/3 |> Enum.reduce/3`, with
#    the default credit window (64) and a large one (1024); then the same through the Rust test
#    worker (`snakepit_test_worker`'s `count`), which shows the pool's own cost without Python.
# 2. Time to first chunk: a stream of one chunk, from the call to its callback, against a
#    plain `execute/3` round trip (`whoami`) on the same pool, one caller, calls interleaved.
#
# Environment: SNAKEPIT_PYTHON (interpreter, default python3), BENCH_CHUNKS (chunks per stream,
# default 200000), BENCH_RUNS (first-chunk samples, default 500). Every stream's chunks are
# checked (count and order) before anything is timed; a failed stream aborts the run.

for file <- ["support/os.ex"], do: Code.require_file(file, __DIR__)

defmodule SnakepitBench.Stream do
  alias SnakepitBench.OS

  @adapter_dir Path.expand("../test/support/python", __DIR__)
  @adapter_args ["--adapter", "streaming_adapter.StreamingAdapter"]

  def main do
    Logger.configure(level: :warning)
    chunks = String.to_integer(System.get_env("BENCH_CHUNKS", "200000"))
    runs = String.to_integer(System.get_env("BENCH_RUNS", "500"))

    {python, facts} = OS.python_and_facts()

    IO.puts("""
    ## Streams

    #{facts}
    - #{chunks} chunks per stream (small: one integer each), median of 3 streams

    ### Chunks per second

    | worker | consumer | window | chunks/s | µs per chunk |
    | --- | --- | ---: | ---: | ---: |\
    """)

    for window <- [64, 1024] do
      python_pool(python, window, fn pool ->
        row("Python", "execute_stream/4 callback", window, chunks, &callback(pool, &1))
        row("Python", "stream/3 + Enum.reduce", window, chunks, &lazy(pool, &1))
      end)
    end

    for window <- [64, 1024] do
      with_pool([adapter_module: Snakepit.Adapters.TestWorker, stream_window: window], fn pool ->
        row("Rust test worker", "execute_stream/4 callback", window, chunks, &callback(pool, &1))
      end)
    end

    python_pool(python, 64, fn pool -> first_chunk(pool, runs) end)

    left = OS.await_exit(Process.get(:os_pids, []))
    if left != [], do: raise("worker processes still running: #{inspect(left)}")
  end

  defp row(worker, consumer, window, chunks, stream) do
    # Checked once, then timed.
    stream.(1_000)
    times = for _ <- 1..3, do: elem(:timer.tc(fn -> stream.(chunks) end), 0)
    us = Enum.sort(times) |> Enum.at(1)
    rate = chunks / (us / 1_000_000)

    IO.puts("| #{worker} | #{consumer} | #{window} | #{round(rate)} | #{fmt(us / chunks)} |")
  end

  # Counts the chunks the callback gets, checking their order (the Python worker yields
  # integers, the Rust test worker `%{"i" => k, ...}`), then the end marker.
  defp callback(pool, n) do
    counter = :counters.new(1, [])

    :ok =
      Snakepit.execute_stream(
        "count",
        %{n: n},
        fn
          %{"is_final" => true} = chunk when map_size(chunk) == 1 ->
            :ok

          chunk ->
            expected = :counters.get(counter, 1)
            ^expected = Map.get(chunk, "data", chunk["i"])
            :counters.add(counter, 1, 1)
        end,
        pool: pool
      )

    ^n = :counters.get(counter, 1)
  end

  defp lazy(pool, n) do
    ^n =
      Snakepit.stream("count", %{n: n}, pool: pool)
      |> Enum.reduce(0, fn i, i -> i + 1 end)
  end

  ## Time to first chunk

  defp first_chunk(pool, runs) do
    test = self()

    stream = fn ->
      start = System.monotonic_time(:microsecond)

      :ok =
        Snakepit.execute_stream(
          "count",
          %{n: 1},
          fn
            %{"data" => 0} -> send(test, {:first, System.monotonic_time(:microsecond) - start})
            %{"is_final" => true} -> :ok
          end,
          pool: pool
        )

      receive(do: ({:first, us} -> us))
    end

    call = fn ->
      {us, {:ok, %{"pid" => _}}} =
        :timer.tc(fn -> Snakepit.execute("whoami", %{}, pool: pool) end)

      us
    end

    for _ <- 1..50, do: {stream.(), call.()}
    samples = for _ <- 1..runs, do: {stream.(), call.()}
    {streams, calls} = Enum.unzip(samples)

    IO.puts("""

    ### Time to first chunk (one caller, #{runs} samples, interleaved)

    | request | p50 µs | p99 µs |
    | --- | ---: | ---: |
    | execute_stream/4: call to first callback | #{median(streams)} | #{p99(streams)} |
    | execute/3 round trip (`whoami`) | #{median(calls)} | #{p99(calls)} |\
    """)
  end

  ## Pools

  defp python_pool(python, window, fun) do
    opts = [
      python_executable: python,
      adapter_args: @adapter_args,
      env: [{"PYTHONPATH", @adapter_dir}],
      stream_window: window
    ]

    with_pool(opts, fun)
  end

  defp with_pool(opts, fun), do: OS.with_pool([size: 1] ++ opts, fun)

  defp median(values), do: values |> Enum.sort() |> Enum.at(div(length(values), 2))
  defp p99(values), do: values |> Enum.sort() |> Enum.at(trunc(length(values) * 0.99))
  defp fmt(value), do: :erlang.float_to_binary(value / 1, decimals: 2)
end

SnakepitBench.Stream.main()
