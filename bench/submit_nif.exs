# How long the submit NIF holds the calling scheduler: the time of `Snakepit.Native.pool_submit/7`
# alone (validation, JSON encoding in Rust, dispatch or queueing, the pipe write), for small and
# larger args, measured around the call in the caller. Run: mix run bench/submit_nif.exs
#
# Baseline in the same run: `GenServer.cast/2` of the same args to a process (the cheapest hand-off
# an Elixir pool could make before any work is done).

Logger.configure(level: :warning)

python =
  Snakepit.Adapters.Python.resolve_interpreter(System.get_env("SNAKEPIT_PYTHON") || "python3")

{:ok, _} = Snakepit.Pool.start_link(name: :submit_bench, size: 2, python_executable: python)
:ok = Snakepit.Pool.await_ready(:submit_bench, 30_000)
{native, _, _} = :persistent_term.get({Snakepit.Pool, :submit_bench})

{:ok, %{"x" => 1}} = Snakepit.execute("echo", %{"x" => 1}, pool: :submit_bench)

sink = spawn(fn -> Stream.repeatedly(fn -> receive(do: (_ -> :ok)) end) |> Stream.run() end)

percentile = fn sorted, p ->
  Enum.at(sorted, min(length(sorted) - 1, trunc(length(sorted) * p)))
end

measure = fn args, rounds ->
  submit =
    for _ <- 1..rounds do
      tag = make_ref()
      t0 = System.monotonic_time(:nanosecond)
      {:ok, _id} = Snakepit.Native.pool_submit(native, tag, "echo", args, nil, 30_000, false)
      t1 = System.monotonic_time(:nanosecond)
      receive do: ({^tag, _reply} -> :ok)
      t1 - t0
    end

  cast =
    for _ <- 1..rounds do
      t0 = System.monotonic_time(:nanosecond)
      GenServer.cast(sink, {:execute, "echo", args})
      System.monotonic_time(:nanosecond) - t0
    end

  {Enum.sort(submit), Enum.sort(cast)}
end

IO.puts("interpreter: #{python}\n")
IO.puts("| args | submit NIF p50 | p99 | max | GenServer.cast p50 | p99 |")
IO.puts("|---|---|---|---|---|---|")

for {label, args} <- [
      {"%{x: 1}", %{x: 1}},
      {"100 numbers", %{values: Enum.to_list(1..100)}},
      {"10 KB string", %{text: String.duplicate("a", 10_000)}},
      {"1000-key map", Map.new(1..1000, &{"k#{&1}", &1})}
    ] do
  {submit, cast} = measure.(args, 5_000)
  us = fn ns -> "#{Float.round(ns / 1000, 1)} µs" end

  IO.puts(
    "| #{label} | #{us.(percentile.(submit, 0.5))} | #{us.(percentile.(submit, 0.99))} | " <>
      "#{us.(List.last(submit))} | #{us.(percentile.(cast, 0.5))} | #{us.(percentile.(cast, 0.99))} |"
  )
end

GenServer.stop(:submit_bench)
