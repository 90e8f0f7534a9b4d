defmodule Snakepit.Adapters.TestWorker do
  @moduledoc """
  A Python-free worker for tests: `priv/native/snakepit_test_worker`, a small Rust program
  speaking protocol v1 whose behaviour each request chooses, so faults are exact and fast.

      Snakepit.Pool.start_link(name: MyTestPool, adapter_module: Snakepit.Adapters.TestWorker)
      {:ok, %{"slept" => 10}} = Snakepit.execute("sleep", %{ms: 10}, pool: MyTestPool)

  Commands: `ping`, `echo`, `sleep` (`ms`), `hang`, `crash` (`signal` or `status`), `fail`
  (`type`, `message`), `garbage` (a frame that is not JSON), `garbage_raw` (a header announcing
  ~4 GiB), `oversized` (`bytes`), `wrong_id`, `spawn_child` / `spawn_detached_child`
  (`sleep_s`), `print` (`stdout`, `stderr`), `flood` (`bytes` of output with no newline),
  `cancels` (ids of the cancel frames received), `health_checks` (`%{"heartbeats" => h,
  "pings" => p}` received), `fail_pings` (from then on `ping` fails: with `--no-heartbeat` the
  worker fails its health checks), `count` (`n`, streamed within its credit window), `block` (`fifo`, optional `marker`: blocks
  reading the FIFO until the test writes a line, then `%{"released" => line}`; see
  `Snakepit.TestBlocker` in this project's tests).

  Start-up behaviour comes from `:adapter_args`: `--fail-start`, `--fatal-start`, `--hang-start`,
  `--bad-handshake`, `--ignore-sigterm`, `--start-delay-ms N`, `--no-heartbeat` (announces no
  heartbeat: health checks then send `ping`).
  """

  @behaviour Snakepit.Adapter

  @impl true
  def executable_path(_opts),
    do: Path.join(:code.priv_dir(:snakepit_rs), "native/snakepit_test_worker")

  @impl true
  def script_args(opts), do: Keyword.get(opts, :adapter_args, [])

  @impl true
  def env(_opts), do: []
end
