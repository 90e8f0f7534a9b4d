defmodule Snakepit.WorkerOutputTest do
  # What workers print is logged line by line, and costs the BEAM bounded memory however much
  # they print: a line is cut at a bound while it streams, and the rest of it is not kept.
  use ExUnit.Case, async: false

  alias Snakepit.TestPool

  @moduletag :fault

  setup do
    Snakepit.LogForwarder.forward_to_self()
    %{pool: TestPool.start_test_workers!(size: 1)}
  end

  test "a 200 MB line with no newline is cut, not kept in memory", %{pool: pool} do
    bytes = 200 * 1024 * 1024
    rss_before = rss_bytes()

    # The worker's reply comes after its last write, which the pipe only takes once the pool
    # has read (and dropped) almost all of it.
    assert {:ok, %{"written" => ^bytes}} =
             Snakepit.execute("flood", %{bytes: bytes}, pool: pool, timeout: 60_000)

    grown = rss_bytes() - rss_before
    assert grown < 64 * 1024 * 1024, "the BEAM grew by #{div(grown, 1024 * 1024)} MB"

    # The newline ends the cut line; it is logged with what was dropped, then the next line.
    assert {:ok, "ok"} = Snakepit.execute("print", %{stdout: "\nafter"}, pool: pool)
    assert_receive {:log, _, line, %{snakepit_worker: _}}, 10_000
    assert line =~ ~r/x{16384} \[… #{bytes - 16_384} more bytes cut\]$/
    assert_receive {:log, _, after_line, %{snakepit_worker: _}}, 10_000
    assert after_line =~ ~r/\] after$/
  end

  defp rss_bytes do
    [_, kb] = Regex.run(~r/VmRSS:\s+(\d+) kB/, File.read!("/proc/#{System.pid()}/status"))
    String.to_integer(kb) * 1024
  end
end
