# A pool of real Python workers answering requests concurrently.
#
#   mix run examples/demo.exs            (or: bin/demo)
#
# Starts 4 workers running the showcase adapter (priv/python/snakepit_bridge/adapters/showcase/),
# sends a few commands at once, a session's calls and a stream, prints the replies, the workers and
# the pool's statistics, and shuts down (run_as_script leaves no Python process behind).

Logger.configure(level: :warning)

pool_options = [
  size: 4,
  adapter_args: ["--adapter", "snakepit_bridge.adapters.showcase.ShowcaseAdapter"]
]

Snakepit.run_as_script(
  fn ->
    requests = [
      {"ping", %{}},
      {"echo", %{message: "hello from Elixir", list: [1, 2.5, nil, true]}},
      {"add", %{a: 40, b: 2}},
      {"fibonacci", %{n: 90}},
      {"stats", %{numbers: [2, 4, 4, 4, 5, 5, 7, 9]}},
      {"word_count", %{text: "the quick fox jumps over the lazy dog the end"}},
      {"no_such_command", %{}}
    ]

    IO.puts(
      "Running #{length(requests)} commands concurrently on #{pool_options[:size]} Python workers\n"
    )

    requests
    |> Task.async_stream(fn {command, args} -> {command, Snakepit.execute(command, args)} end,
      max_concurrency: length(requests)
    )
    |> Enum.each(fn {:ok, {command, result}} ->
      case result do
        {:ok, value} ->
          IO.puts("#{String.pad_trailing(command, 16)} ok     #{inspect(value)}")

        {:error, error} ->
          IO.puts("#{String.pad_trailing(command, 16)} error  #{Exception.message(error)}")
      end
    end)

    # A burst: 2000 requests from 100 concurrent callers.
    started = System.monotonic_time(:microsecond)

    1..100
    |> Task.async_stream(
      fn i -> for j <- 1..20, do: {:ok, _} = Snakepit.execute("add", %{a: i, b: j}) end,
      max_concurrency: 100
    )
    |> Stream.run()

    elapsed_ms = (System.monotonic_time(:microsecond) - started) / 1000
    IO.puts("\n2000 'add' requests from 100 callers in #{Float.round(elapsed_ms, 1)} ms")

    # A session: its calls reach the worker that holds its state (session_counter counts them).
    session = Snakepit.SessionId.generate()

    counts =
      for _ <- 1..3 do
        {:ok, %{"count" => count}} =
          Snakepit.execute_in_session(session, "session_counter", %{}, affinity: :strict_queue)

        count
      end

    IO.puts("\nA session's three calls, counted on its worker: #{inspect(counts)}")
    :ok = Snakepit.SessionHelpers.cleanup_session(session)

    # A stream: chunks as the tool yields them, lazily, with back-pressure.
    streamed = Snakepit.stream("count_up", %{to: 5}) |> Enum.map(& &1["i"])
    IO.puts("Streamed from count_up: #{inspect(streamed)}")

    IO.puts("\nWorkers:")
    for worker <- Snakepit.list_workers(), do: IO.puts("  #{inspect(worker)}")

    IO.puts("\nSnakepit.get_stats/1:")
    IO.inspect(Snakepit.get_stats(), pretty: true)
  end,
  pool_options: pool_options
)
