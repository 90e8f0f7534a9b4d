# What telemetry costs the request path: requests/s and one caller's latency in three modes,
#
#   off      - `:telemetry` not loaded (what an application without it runs): untimed requests
#   loaded   - `:telemetry` loaded, no handler attached: timed requests, events to nobody
#   handler  - a no-op handler attached to every request event
#
#     mix run bench/telemetry.exs            (BENCH_SECONDS per round, default 2; BENCH_QUICK=1)
#
# The real `:telemetry` cannot be installed here: the test suite's stand-in
# (test/support/telemetry_stub.ex: one `:persistent_term` lookup per event where the real one
# makes an ETS lookup) is loaded for the second and third modes. Pools of the Rust test worker
# (`Snakepit.Adapters.TestWorker`) keep the worker's own cost small, so the path's differences
# show. Modes alternate over three rounds; the table shows each mode's best round.

Code.require_file("../test/support/telemetry_stub.ex", __DIR__)
Code.require_file("support/os.ex", __DIR__)

defmodule SnakepitBench.Telemetry do
  alias SnakepitBench.OS

  @callers 50
  @rounds 3
  @modes [:off, :loaded, :handler]

  def main do
    Logger.configure(level: :warning)
    quick? = System.get_env("BENCH_QUICK") == "1"
    seconds = if quick?, do: 0.3, else: String.to_integer(System.get_env("BENCH_SECONDS", "2"))

    OS.with_pool([adapter_module: Snakepit.Adapters.TestWorker, size: 2], fn pool ->
      # Check the result before timing anything.
      {:ok, %{"x" => 1}} = Snakepit.execute("echo", %{"x" => 1}, pool: pool)

      results =
        for _round <- 1..@rounds, mode <- @modes, reduce: %{} do
          acc ->
            set_mode(mode)
            rate = throughput(pool, seconds)
            p50 = latency(pool, if(quick?, do: 500, else: 5_000))
            Map.update(acc, mode, {rate, p50}, fn {r, l} -> {max(r, rate), min(l, p50)} end)
        end

      set_mode(:off)
      print(results, seconds)
    end)
  end

  defp set_mode(mode) do
    :telemetry.detach(:bench)
    :persistent_term.put({Snakepit.Telemetry, :enabled}, mode != :off)

    if mode == :handler,
      do:
        :telemetry.attach_many(:bench, Snakepit.Telemetry.events(), fn _, _, _, _ -> :ok end, nil)
  end

  defp throughput(pool, seconds) do
    deadline = System.monotonic_time(:millisecond) + round(seconds * 1000)

    1..@callers
    |> Task.async_stream(fn _ -> loop(pool, deadline, 0) end, timeout: :infinity)
    |> Enum.reduce(0, fn {:ok, n}, sum -> sum + n end)
    |> Kernel./(seconds)
  end

  defp loop(pool, deadline, n) do
    if System.monotonic_time(:millisecond) >= deadline do
      n
    else
      {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
      loop(pool, deadline, n + 1)
    end
  end

  # One caller's median round trip, in µs.
  defp latency(pool, calls) do
    times =
      for _ <- 1..calls do
        t0 = System.monotonic_time(:nanosecond)
        {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
        System.monotonic_time(:nanosecond) - t0
      end

    Enum.at(Enum.sort(times), div(calls, 2)) / 1000
  end

  defp print(results, seconds) do
    IO.puts(
      "\nTelemetry on the request path (#{@callers} callers, 2 Rust test workers, " <>
        "#{seconds} s × #{@rounds} rounds, best round)\n"
    )

    IO.puts("| mode | requests/s | 1 caller p50 (µs) |")
    IO.puts("|---|---:|---:|")

    for mode <- @modes do
      {rate, p50} = results[mode]
      IO.puts("| #{mode} | #{round(rate)} | #{Float.round(p50, 1)} |")
    end
  end
end

SnakepitBench.Telemetry.main()
