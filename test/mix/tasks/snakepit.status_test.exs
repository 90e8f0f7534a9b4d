defmodule Mix.Tasks.Snakepit.StatusTest do
  # Not async: the task reports every running pool, and reads the application environment.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  import Snakepit.TestPool

  alias Mix.Tasks.Snakepit.Status

  test "reports each pool with a table of its workers, the queue, errors and latency" do
    pool = start_test_workers!(size: 2)
    assert {:ok, _} = Snakepit.execute("ping", %{}, pool: pool)
    assert {:error, _} = Snakepit.execute("fail", %{message: "boom"}, pool: pool)

    output = capture_io(fn -> Mix.Task.rerun("snakepit.status", ["--pool", "#{pool}"]) end)

    assert output =~ "Pool #{inspect(pool)}"
    assert output =~ ~r/workers: 2 \(2 available, 0 busy\)\s+queued: 0/
    assert output =~ ~r/requests: 2\s+completed: 1\s+errors: 1\s+error rate: (-|50\.0%)/
    assert output =~ ~r/queue time p50 (-|[\d.]+ ms)  p95/
    assert output =~ ~r/run time   p50 (-|[\d.]+ ms)  p95/

    assert output =~
             ~r/id\s+os pid\s+status\s+requests\s+errors\s+uptime\s+memory\s+last used/

    # One row per worker, with its OS pid, status and request count; figures a pool does not
    # report read "-".
    for %{id: id, os_pid: os_pid} = worker <- Snakepit.list_workers(pool) do
      assert output =~ ~r/#{Regex.escape(id)}\s+#{os_pid}\s+available\s+#{worker.requests}\s/
    end

    assert length(Regex.scan(~r/^  \S+\s+\d+\s+available/m, output)) == 2
  end

  test "--watch repeats the report as often as --count says, sleeping between reports" do
    pool = start_test_workers!(size: 1)
    parent = self()

    output =
      capture_io(fn ->
        Status.watch([watch: 3, count: 2, pool: "#{pool}"], &send(parent, {:slept, &1}))
      end)

    # Two reports, one sleep of the interval between them.
    assert [_, _] = Regex.scan(~r/Pool #{Regex.escape(inspect(pool))}/, output)
    assert output =~ "(refresh 1, every 3 s)"
    assert output =~ "(refresh 2, every 3 s)"
    assert_received {:slept, 3_000}
    refute_received {:slept, _}
  end

  test "a pool that is not running is named, with those that are" do
    pool = start_test_workers!(size: 1)

    output = capture_io(fn -> Mix.Task.rerun("snakepit.status", ["--pool", "no_such_pool"]) end)

    assert output =~ "No running pool named no_such_pool; running:"
    assert output =~ inspect(pool)
  end

  test "bad arguments are refused" do
    assert_raise Mix.Error, ~r/unknown arguments/, fn ->
      Mix.Task.rerun("snakepit.status", ["--bogus"])
    end

    assert_raise Mix.Error, ~r/--watch takes seconds > 0, got: 0/, fn ->
      Mix.Task.rerun("snakepit.status", ["--watch", "0"])
    end

    assert_raise Mix.Error, ~r/--count must be at least 1/, fn ->
      Mix.Task.rerun("snakepit.status", ["--count", "0"])
    end
  end
end
