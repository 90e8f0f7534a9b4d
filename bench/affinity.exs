# The cost and the effect of session affinity (`Snakepit.execute_in_session/4`).
#
#     mix run bench/affinity.exs
#
# 1. Per-call cost: `execute` against `execute_in_session` on one pool in the same run, rounds
#    alternated: 50 callers sending `ping` back to back (each caller its own session), then one
#    caller alone, the kinds interleaved call by call (the latency a session adds), then the
#    submit NIF alone (the time it holds the scheduler, as bench/submit_nif.exs measures it).
# 2. Hint under load: 20 workers whose every request sleeps 50 ms (the test adapter's `sleep`),
#    1,000 requests from 100 callers spread over 50 sessions; the ideal rate is 20 / 50 ms =
#    400 req/s. Plain requests and `:strict_queue` are run the same way for comparison.
#
# Environment: SNAKEPIT_PYTHON (interpreter, default python3), BENCH_SECONDS (per load round,
# default 2). Replies are checked before anything is timed; any failed request aborts the run.

for file <- ["support/os.ex"], do: Code.require_file(file, __DIR__)

defmodule SnakepitBench.Affinity do
  alias SnakepitBench.OS

  @callers 50
  @adapter_dir Path.expand("../test/support/python", __DIR__)

  def main do
    Logger.configure(level: :warning)
    seconds = String.to_integer(System.get_env("BENCH_SECONDS", "2"))

    {python, facts} = OS.python_and_facts()

    IO.puts("""
    ## Session affinity

    #{facts}
    """)

    per_call(python, seconds)
    hint_under_load(python)

    left = OS.await_exit(Process.get(:os_pids, []))
    if left != [], do: raise("worker processes still running: #{inspect(left)}")
  end

  ## 1. Per-call cost

  defp per_call(python, seconds) do
    with_pool([size: 2, python_executable: python], fn pool ->
      calls = %{
        "execute" => fn _caller -> Snakepit.execute("ping", %{}, pool: pool) end,
        "execute_in_session (:hint)" => fn caller ->
          Snakepit.execute_in_session("bench-#{caller}", "ping", %{}, pool: pool)
        end,
        "execute_in_session (:strict_queue)" => fn caller ->
          Snakepit.execute_in_session("strict-#{caller}", "ping", %{},
            pool: pool,
            affinity: :strict_queue
          )
        end
      }

      for {_, call} <- calls, do: {:ok, %{"status" => "pong"}} = call.(0)
      names = Map.keys(calls) |> Enum.sort()
      # Warm-up, then two alternated rounds per kind.
      for name <- names, do: load(calls[name], 0.5)

      loads = rounds(names, 2, &load(calls[&1], seconds))
      alone = alone(names, calls, 3_000)

      IO.puts("""
      ### Per-call cost (2 workers, `ping`)

      | call | #{@callers} callers req/s | p50 ms | p99 ms | 1 caller p50 µs | added µs |
      | --- | ---: | ---: | ---: | ---: | ---: |\
      """)

      base = median(alone["execute"])

      for name <- names do
        rps = loads[name] |> Enum.map(& &1.rps) |> mean()
        p50 = loads[name] |> Enum.map(& &1.p50) |> mean()
        p99 = loads[name] |> Enum.map(& &1.p99) |> mean()
        one = median(alone[name])

        IO.puts(
          "| #{name} | #{round(rps)} | #{fmt(p50)} | #{fmt(p99)} | #{fmt(one)} | " <>
            "#{if name == "execute", do: "-", else: fmt(one - base)} |"
        )
      end

      submit_nif(pool)
    end)
  end

  # `measure` of each name, `n` rounds alternated between the names: name => results.
  defp rounds(names, n, measure) do
    for _round <- 1..n, name <- names, reduce: %{} do
      acc ->
        result = measure.(name)
        Map.update(acc, name, [result], &[result | &1])
    end
  end

  # The submit NIF alone, with and without a session (its reply awaited outside the timing).
  defp submit_nif(pool) do
    native = Snakepit.Pool.Registry.native!(pool)

    time = fn session ->
      samples =
        for i <- 1..5_000 do
          tag = make_ref()
          session = if session, do: {"nif-#{rem(i, 1000)}", nil}
          t0 = System.monotonic_time(:nanosecond)
          {:ok, _} = Snakepit.Native.pool_submit(native, tag, "ping", %{}, session, 30_000, false)
          t1 = System.monotonic_time(:nanosecond)
          receive do: ({^tag, _} -> :ok)
          (t1 - t0) / 1000
        end

      median(samples)
    end

    _warm = {time.(false), time.(true)}
    plain = time.(false)
    session = time.(true)

    IO.puts("""

    Submit NIF alone, p50: #{fmt(plain)} µs without a session, #{fmt(session)} µs with one \
    (1,000 sessions in rotation): #{fmt(session - plain)} µs added.
    """)
  end

  ## 2. Hint under load

  defp hint_under_load(python) do
    opts = [
      size: 20,
      python_executable: python,
      adapter_args: ["--adapter", "snakepit_test_adapter.TestAdapter"],
      env: [{"PYTHONPATH", @adapter_dir}],
      queue_timeout: 60_000,
      health_check_interval: nil
    ]

    with_pool(opts, fn pool ->
      {:ok, %{"slept" => 50}} = Snakepit.execute("sleep", %{ms: 50}, pool: pool)

      runs = [
        {"plain `execute`", []},
        {"`execute_in_session`, :hint", [affinity: :hint]},
        {"`execute_in_session`, :strict_queue", [affinity: :strict_queue]}
      ]

      IO.puts("""
      ### 20 workers × 50 ms per request, 1,000 requests from 100 callers over 50 sessions

      | requests | elapsed s | req/s | share of ideal (400 req/s) | sessions that moved |
      | --- | ---: | ---: | ---: | ---: |\
      """)

      for {label, opts} <- runs do
        {elapsed, moved} = sleep_run(pool, opts)
        rate = 1000 / elapsed

        IO.puts(
          "| #{label} | #{fmt(elapsed)} | #{round(rate)} | #{round(rate / 4)} % | " <>
            "#{if opts == [], do: "-", else: moved} |"
        )
      end
    end)
  end

  # 100 callers × 10 requests; caller c's requests belong to session rem(c, 50) (unless plain).
  # Returns the elapsed seconds and how many sessions ran on more than one worker.
  defp sleep_run(pool, opts) do
    run = System.unique_integer([:positive])
    t0 = System.monotonic_time()

    results =
      1..100
      |> Enum.map(fn caller ->
        session = "run#{run}-s#{rem(caller, 50)}"

        Task.async(fn ->
          for _ <- 1..10 do
            result =
              if opts == [],
                do: Snakepit.execute("sleep", %{ms: 50}, pool: pool),
                else:
                  Snakepit.execute_in_session(session, "sleep", %{ms: 50}, [pool: pool] ++ opts)

            {:ok, %{"pid" => pid}} = result
            {session, pid}
          end
        end)
      end)
      |> Task.await_many(:infinity)
      |> List.flatten()

    elapsed = (System.monotonic_time() - t0) / :erlang.convert_time_unit(1, :second, :native)

    moved =
      results
      |> Enum.group_by(&elem(&1, 0), &elem(&1, 1))
      |> Enum.count(fn {_, pids} -> length(Enum.uniq(pids)) > 1 end)

    {elapsed, moved}
  end

  ## Load

  # @callers processes call back to back for `seconds`.
  defp load(call, seconds) do
    deadline =
      System.monotonic_time() + round(seconds * :erlang.convert_time_unit(1, :second, :native))

    t0 = System.monotonic_time()

    samples =
      1..@callers
      |> Enum.map(fn caller -> Task.async(fn -> loop(call, caller, deadline, []) end) end)
      |> Task.await_many(:infinity)
      |> List.flatten()
      |> Enum.sort()

    elapsed = (System.monotonic_time() - t0) / :erlang.convert_time_unit(1, :second, :native)

    %{
      rps: length(samples) / elapsed,
      p50: pct(samples, 0.5) / 1000,
      p99: pct(samples, 0.99) / 1000
    }
  end

  defp loop(call, caller, deadline, samples) do
    t0 = System.monotonic_time()

    if t0 >= deadline do
      samples
    else
      {:ok, %{"status" => "pong"}} = call.(caller)
      us = System.convert_time_unit(System.monotonic_time() - t0, :native, :nanosecond) / 1000
      loop(call, caller, deadline, [us | samples])
    end
  end

  # One caller, `n` calls of each kind one after another, the kinds interleaved call by call so
  # that drift on a shared machine hits them alike: name => latencies in µs.
  defp alone(names, calls, n) do
    samples =
      for _ <- 1..n, name <- names do
        t0 = System.monotonic_time(:nanosecond)
        {:ok, %{"status" => "pong"}} = calls[name].(1)
        {name, (System.monotonic_time(:nanosecond) - t0) / 1000}
      end

    Enum.group_by(samples, &elem(&1, 0), &elem(&1, 1))
  end

  defp with_pool(opts, fun), do: OS.with_pool([max_queue_size: 5_000] ++ opts, fun)

  defp median(values), do: values |> Enum.sort() |> pct(0.5)
  defp pct(sorted, p), do: Enum.at(sorted, min(length(sorted) - 1, trunc(length(sorted) * p)))
  defp mean(values), do: Enum.sum(values) / length(values)
  defp fmt(value), do: :erlang.float_to_binary(value / 1, decimals: 2)
end

SnakepitBench.Affinity.main()
