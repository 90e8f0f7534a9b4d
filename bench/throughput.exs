# Throughput, latency and start-up time: snakepit_rs against a pure-OTP Port pool.
#
#     mix run bench/throughput.exs
#
# Environment:
#   SNAKEPIT_PYTHON  interpreter for both sides (default python3, resolved to the real binary)
#   BENCH_SECONDS    measured seconds per throughput scenario (default 3)
#   BENCH_QUICK=1    smoke run: ~0.5 s per scenario
#
# Both sides run in this VM against the same Python bridge (priv/python). The numbers are noisy
# on small machines: the BEAM and the Python workers share the cores. Nothing here asserts on
# timings; any failed request aborts the run.

for file <- ["support/json.ex", "support/os.ex", "support/port_pool.ex"],
    do: Code.require_file(file, __DIR__)

defmodule SnakepitBench.Throughput do
  alias SnakepitBench.{OS, PortPool}

  @callers 50
  @pool_sizes [1, 2, 4]
  @start_size 8
  @start_runs 3
  @echo_args %{"x" => 1, "s" => "héllo \"quoted\"\n", "l" => [1, 2.5, nil, true], "m" => %{}}

  def main do
    # Keep the pools' debug logs (worker ready, ...) out of the report.
    Logger.configure(level: :warning)

    quick? = System.get_env("BENCH_QUICK") == "1"
    seconds = if quick?, do: 0.5, else: seconds_from_env()
    warmup = if quick?, do: 0.1, else: 0.5

    {python, facts} = OS.python_and_facts()
    sides = [snakepit_side(python), baseline_side(python)]
    print_facts(facts, seconds, warmup)

    rows =
      for size <- @pool_sizes do
        results = for side <- sides, do: load_scenario(side, size, seconds, warmup)
        {"#{size} worker#{if size > 1, do: "s"} × #{@callers} callers", {:load, results}}
      end

    start = for side <- sides, do: start_scenario(side)
    print_table(rows ++ [{"start #{@start_size} workers", {:start, start}}])

    left = OS.await_exit(Process.get(:os_pids, []))
    IO.puts("\nPython worker processes left running: #{length(left)}")
    if left != [], do: raise("worker processes still running: #{inspect(left)}")
  end

  ## The two sides

  # Each side: how to start a pool of `size` (returning a handle once every worker is ready),
  # run one request, list the workers' OS pids, and stop the pool.
  defp snakepit_side(python) do
    %{
      name: "snakepit_rs",
      start: fn size ->
        name = :"bench_snakepit_#{System.unique_integer([:positive])}"

        {:ok, _} =
          Snakepit.Pool.start_link(
            name: name,
            size: size,
            python_executable: python,
            queue_timeout: 30_000,
            max_queue_size: 1_000
          )

        :ok = Snakepit.Pool.await_ready(name, 30_000)
        name
      end,
      execute: fn pool, command, args -> Snakepit.execute(command, args, pool: pool) end,
      os_pids: &Snakepit.Pool.os_pids/1,
      stop: &GenServer.stop/1
    }
  end

  defp baseline_side(python) do
    bridge_path = Snakepit.Adapters.Python.bridge_path()

    %{
      name: "OTP Port baseline",
      start: fn size ->
        name = :"bench_baseline_#{System.unique_integer([:positive])}"

        {:ok, _} =
          PortPool.start_link(
            name: name,
            size: size,
            python: python,
            bridge_path: bridge_path,
            queue_timeout: 30_000
          )

        name
      end,
      execute: fn pool, command, args -> PortPool.execute(pool, command, args, 30_000) end,
      os_pids: &PortPool.os_pids/1,
      stop: &PortPool.stop/1
    }
  end

  # Starts a pool, runs `fun` with it, and always stops it and waits for its workers to exit.
  defp with_pool(side, size, fun) do
    pool = side.start.(size)
    os_pids = side.os_pids.(pool)
    Process.put(:os_pids, os_pids ++ Process.get(:os_pids, []))

    try do
      fun.(pool)
    after
      side.stop.(pool)
      OS.await_exit(os_pids)
    end
  end

  ## Scenarios

  defp load_scenario(side, size, seconds, warmup) do
    IO.write(:stderr, "#{side.name}: #{size} worker(s) × #{@callers} callers ... ")

    with_pool(side, size, fn pool ->
      check_replies!(side, pool)
      ping = fn -> side.execute.(pool, "ping", %{}) end
      run_load!(side, ping, warmup)
      result = run_load!(side, ping, seconds)
      IO.puts(:stderr, "#{round(result.rps)} req/s")
      result
    end)
  end

  # Median of several start-ups of a pool of @start_size: start_link until every worker is ready.
  defp start_scenario(side) do
    IO.write(:stderr, "#{side.name}: start #{@start_size} workers ... ")

    times =
      for _ <- 1..@start_runs do
        t0 = :erlang.monotonic_time()
        with_pool(side, @start_size, fn _pool -> to_ms(:erlang.monotonic_time() - t0) end)
      end

    median = times |> Enum.sort() |> Enum.at(div(@start_runs, 2))

    IO.puts(
      :stderr,
      "#{Float.round(median, 1)} ms (runs: #{Enum.map_join(times, ", ", &Float.round(&1, 1))})"
    )

    median
  end

  # The replies must be right before anything is timed.
  defp check_replies!(side, pool) do
    case side.execute.(pool, "ping", %{}) do
      {:ok, %{"status" => "pong"}} -> :ok
      other -> raise "#{side.name}: bad ping reply: #{inspect(other)}"
    end

    case side.execute.(pool, "echo", @echo_args) do
      {:ok, echoed} when echoed == @echo_args -> :ok
      other -> raise "#{side.name}: bad echo reply: #{inspect(other)}"
    end
  end

  ## Load generation

  # @callers processes send requests back to back for `seconds`; each records its latencies.
  defp run_load!(side, request, seconds) do
    callers =
      for _ <- 1..@callers do
        Task.async(fn ->
          receive do
            {:go, deadline} -> caller_loop(request, deadline, [], [])
          end
        end)
      end

    t0 = :erlang.monotonic_time()
    deadline = t0 + round(seconds * :erlang.convert_time_unit(1, :second, :native))
    Enum.each(callers, &send(&1.pid, {:go, deadline}))
    results = Task.await_many(callers, :infinity)
    # Until the last in-flight request finished.
    elapsed = :erlang.monotonic_time() - t0

    case Enum.flat_map(results, &elem(&1, 1)) do
      [] ->
        :ok

      errors ->
        raise "#{side.name}: #{length(errors)} failed requests, e.g. #{inspect(hd(errors))}"
    end

    sorted = results |> Enum.flat_map(&elem(&1, 0)) |> Enum.sort() |> List.to_tuple()
    count = tuple_size(sorted)

    %{
      rps: count / (elapsed / :erlang.convert_time_unit(1, :second, :native)),
      p50: to_ms(percentile(sorted, 50)),
      p99: to_ms(percentile(sorted, 99))
    }
  end

  defp caller_loop(request, deadline, samples, errors) do
    t0 = :erlang.monotonic_time()

    if t0 >= deadline do
      {samples, errors}
    else
      result = request.()
      latency = :erlang.monotonic_time() - t0

      case result do
        {:ok, %{"status" => "pong"}} ->
          caller_loop(request, deadline, [latency | samples], errors)

        other ->
          caller_loop(request, deadline, samples, [other | errors])
      end
    end
  end

  # Nearest-rank percentile of a sorted tuple.
  defp percentile(sorted, p), do: elem(sorted, max(ceil(p / 100 * tuple_size(sorted)) - 1, 0))

  defp to_ms(native), do: native * 1000 / :erlang.convert_time_unit(1, :second, :native)

  ## Report

  defp print_facts(facts, seconds, warmup) do
    IO.puts("""
    ## snakepit_rs vs OTP Port pool

    #{facts}
    - the same interpreter for both sides
    - load: #{@callers} caller processes sending `ping` back to back, #{seconds} s measured \
    after #{warmup} s warm-up; latency measured in the caller
    """)
  end

  defp print_table(rows) do
    IO.puts("""
    | scenario | snakepit_rs req/s | p50 ms | p99 ms | baseline req/s | p50 ms | p99 ms | ratio |
    | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\
    """)

    for {label, result} <- rows, do: IO.puts(row(label, result))

    IO.puts("""

    ratio: snakepit_rs req/s ÷ baseline req/s (higher is better for snakepit_rs); for start-up, \
    snakepit_rs time ÷ baseline time (lower is better), median of #{@start_runs} runs, in the \
    req/s columns.\
    """)
  end

  defp row(label, {:load, [rs, base]}) do
    cells = [
      round(rs.rps),
      ms(rs.p50),
      ms(rs.p99),
      round(base.rps),
      ms(base.p50),
      ms(base.p99),
      "#{Float.round(rs.rps / base.rps, 2)}×"
    ]

    "| #{label} | #{Enum.join(cells, " | ")} |"
  end

  defp row(label, {:start, [rs, base]}) do
    cells = ["#{ms(rs)} ms", "", "", "#{ms(base)} ms", "", "", "#{Float.round(rs / base, 2)}×"]
    "| #{label} | #{Enum.join(cells, " | ")} |"
  end

  defp ms(value), do: :erlang.float_to_binary(value / 1, decimals: 2)

  defp seconds_from_env do
    case Float.parse(System.get_env("BENCH_SECONDS", "3")) do
      {seconds, ""} when seconds > 0 -> seconds
      _ -> raise "BENCH_SECONDS must be a positive number"
    end
  end
end

SnakepitBench.Throughput.main()
