defmodule Mix.Tasks.Snakepit.Status do
  @shortdoc "Shows Snakepit's pools: workers, queue, errors and latency"

  @moduledoc """
  Shows every running pool: its workers (id, OS pid, status, requests, errors, uptime, memory,
  last use), its queue, its error rate and the percentiles of queue time and run time.

      mix snakepit.status                    # once
      mix snakepit.status --watch            # refreshes every 2 s until interrupted
      mix snakepit.status --watch 5          # every 5 s
      mix snakepit.status --watch --count 3  # three reports, then stops
      mix snakepit.status --pool my_pool     # only that pool (repeatable)

  The project's application is started first (`mix app.start`), which starts the pools of
  `config :snakepit, pooling_enabled: true, ...` and those the project's own supervision tree
  starts, and the first report waits (up to 15 s) for their workers to start; pools already
  running in this VM (e.g. when called from iex with `Mix.Task.run("snakepit.status")`) are
  reported as they are.

  A figure the pool does not report (an older snakepit_rs, or a BEAM worker's memory) shows as
  `-`; a worker that never ran a request was last used `never`.
  """

  use Mix.Task

  @default_interval_s 2
  @ready_timeout_ms 15_000

  @impl Mix.Task
  def run(args) do
    opts = parse!(args)
    Mix.Task.run("app.start")
    # Pools the application just started are still starting their workers: the first report
    # shows them started (or why they could not start: the pool keeps retrying).
    Enum.each(Snakepit.Pool.Registry.pools(), &Snakepit.Pool.await_ready(&1, @ready_timeout_ms))

    if opts[:watch] || opts[:count],
      do: watch(opts, &Process.sleep/1),
      else: report(opts)
  end

  @doc """
  Prints the report `opts[:count]` times (default: until the VM stops), calling
  `sleep.(ms)` between two reports, `opts[:watch]` seconds apart. `run/1` passes
  `Process.sleep/1`; a test passes a function that returns at once.
  """
  @spec watch(keyword(), (non_neg_integer() -> term())) :: :ok
  def watch(opts, sleep) do
    interval_ms = Keyword.get(opts, :watch, @default_interval_s) * 1_000
    count = Keyword.get(opts, :count, :infinity)
    watch_loop(opts, sleep, interval_ms, count, 1)
  end

  defp watch_loop(opts, sleep, interval_ms, count, n) do
    if IO.ANSI.enabled?(), do: IO.write([IO.ANSI.home(), IO.ANSI.clear()])
    Mix.shell().info("#{timestamp()} (refresh #{n}, every #{div(interval_ms, 1_000)} s)")
    report(opts)

    if count == :infinity or n < count do
      sleep.(interval_ms)
      watch_loop(opts, sleep, interval_ms, count, n + 1)
    else
      :ok
    end
  end

  @doc """
  Prints one report of the running pools (all, or those named by `opts[:pool]`) to
  `Mix.shell/0`.
  """
  @spec report(keyword()) :: :ok
  def report(opts \\ []) do
    running = Snakepit.Pool.Registry.pools() |> Enum.sort()

    pools =
      case Keyword.get_values(opts, :pool) do
        [] -> running
        wanted -> Enum.filter(running, &(inspect(&1) in wanted or Atom.to_string(&1) in wanted))
      end

    if pools == [] do
      Mix.shell().info(no_pool_message(running, opts))
    else
      Enum.each(pools, &report_pool/1)
    end
  end

  defp no_pool_message([], _opts) do
    hint =
      if Snakepit.Config.pooling_enabled?(),
        do: "",
        else: " (pooling is disabled: set `config :snakepit, pooling_enabled: true`)"

    "No Snakepit pool is running#{hint}."
  end

  defp no_pool_message(running, opts) do
    "No running pool named #{Enum.join(Keyword.get_values(opts, :pool), ", ")}; running: " <>
      Enum.map_join(running, ", ", &inspect/1)
  end

  # A pool may stop between listing and reading it.
  defp report_pool(pool) do
    stats = Snakepit.get_stats(pool)
    workers = Snakepit.list_workers(pool)
    shell = Mix.shell()

    shell.info("")
    shell.info("Pool #{inspect(pool)}#{if stats[:circuit_open], do: " (circuit open)"}")

    shell.info(
      "  workers: #{stats[:workers]} (#{stats[:available]} available, #{stats[:busy]} busy)  " <>
        "queued: #{stats[:queued]}  in flight: #{stats[:in_flight]}"
    )

    shell.info(
      "  requests: #{stats[:requests]}  completed: #{stats[:completed]}  " <>
        "errors: #{stats[:errors]}  error rate: #{percent(stats[:error_rate])}"
    )

    shell.info("  queue time #{percentiles(stats[:queue_time_ms])}")
    shell.info("  run time   #{percentiles(stats[:run_time_ms])}")
    shell.info("")
    Enum.each(table(workers), &shell.info/1)
  rescue
    error in Snakepit.Error -> Mix.shell().info("Pool #{inspect(pool)}: #{error.message}")
  end

  @headers ["id", "os pid", "status", "requests", "errors", "uptime", "memory", "last used"]

  defp table(workers) do
    rows =
      for worker <- Enum.sort_by(workers, &to_string(&1[:id])) do
        [
          to_string(worker[:id]),
          cell(worker[:os_pid], &Integer.to_string/1),
          cell(worker[:status], &Atom.to_string/1),
          cell(worker[:requests], &Integer.to_string/1),
          cell(worker[:errors], &Integer.to_string/1),
          cell(worker[:uptime_ms], &duration/1),
          cell(worker[:memory_rss_bytes], &bytes/1),
          last_used(worker)
        ]
      end

    widths =
      for column <- Enum.zip([@headers | rows]) do
        column |> Tuple.to_list() |> Enum.map(&String.length/1) |> Enum.max()
      end

    for row <- [@headers | rows] do
      row
      |> Enum.zip(widths)
      |> Enum.map_join("  ", fn {text, width} -> String.pad_trailing(text, width) end)
      |> then(&String.trim_trailing("  " <> &1))
    end
  end

  defp cell(nil, _format), do: "-"
  defp cell(value, format), do: format.(value)

  defp last_used(worker) do
    case Map.fetch(worker, :last_used_ms_ago) do
      :error -> "-"
      {:ok, nil} -> "never"
      {:ok, ms} -> duration(ms) <> " ago"
    end
  end

  defp percent(nil), do: "-"
  defp percent(rate), do: :erlang.float_to_binary(rate * 100.0, decimals: 1) <> "%"

  defp percentiles(%{p50: p50, p95: p95, p99: p99, samples: samples}),
    do: "p50 #{ms(p50)}  p95 #{ms(p95)}  p99 #{ms(p99)}  (#{samples} samples)"

  defp percentiles(_absent), do: "p50 -  p95 -  p99 -"

  defp ms(value) when is_number(value),
    do: :erlang.float_to_binary(value / 1, decimals: 2) <> " ms"

  # "1h 2m", "3m 4s", "5s", "120ms": a duration in ms as a person reads it.
  defp duration(ms) when ms < 1_000, do: "#{ms}ms"
  defp duration(ms) when ms < 60_000, do: "#{div(ms, 1_000)}s"
  defp duration(ms) when ms < 3_600_000, do: "#{div(ms, 60_000)}m #{rem(div(ms, 1_000), 60)}s"
  defp duration(ms), do: "#{div(ms, 3_600_000)}h #{rem(div(ms, 60_000), 60)}m"

  # "512 B", "1.5 KiB", "12.3 MiB".
  defp bytes(n) when n < 1024, do: "#{n} B"
  defp bytes(n) when n < 1024 * 1024, do: one_decimal(n / 1024) <> " KiB"
  defp bytes(n) when n < 1024 * 1024 * 1024, do: one_decimal(n / (1024 * 1024)) <> " MiB"
  defp bytes(n), do: one_decimal(n / (1024 * 1024 * 1024)) <> " GiB"

  defp one_decimal(x), do: :erlang.float_to_binary(x, decimals: 1)

  defp timestamp, do: NaiveDateTime.utc_now() |> NaiveDateTime.truncate(:second) |> to_string()

  # `--watch` takes an optional number of seconds, which OptionParser cannot say: a number
  # right after it is its value.
  defp parse!(args) do
    {watch, args} = take_watch(args, [], nil)

    {opts, rest, invalid} = OptionParser.parse(args, strict: [count: :integer, pool: :keep])

    if invalid != [] or rest != [],
      do: Mix.raise("mix snakepit.status: unknown arguments #{inspect(invalid ++ rest)}")

    if opts[:count] && opts[:count] < 1,
      do: Mix.raise("mix snakepit.status: --count must be at least 1, got: #{opts[:count]}")

    if watch, do: Keyword.put(opts, :watch, watch), else: opts
  end

  defp take_watch(["--watch", value | rest], acc, _watch) do
    case Integer.parse(value) do
      {seconds, ""} when seconds > 0 ->
        take_watch(rest, acc, seconds)

      {_, ""} ->
        Mix.raise("mix snakepit.status: --watch takes seconds > 0, got: #{value}")

      _ ->
        take_watch([value | rest], acc, @default_interval_s)
    end
  end

  defp take_watch(["--watch" | rest], acc, _watch), do: take_watch(rest, acc, @default_interval_s)
  defp take_watch([arg | rest], acc, watch), do: take_watch(rest, [arg | acc], watch)
  defp take_watch([], acc, watch), do: {watch, Enum.reverse(acc)}
end
