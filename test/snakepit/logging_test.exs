defmodule Snakepit.LoggingTest do
  # Worker output and pool events reach Logger with structured metadata; `log_python_output:
  # false` silences worker output. Log events are forwarded to the test process
  # (`Snakepit.LogForwarder`) and awaited, never slept for.
  use ExUnit.Case, async: false

  import Snakepit.TestPool
  alias Snakepit.LogForwarder

  setup do
    LogForwarder.forward_to_self()
  end

  test "a worker's output carries its pool, worker id and OS pid" do
    pool = start_test_workers!(size: 1)
    [%{id: id, os_pid: os_pid}] = Snakepit.list_workers(pool)

    assert {:ok, _} =
             Snakepit.execute("print", %{stdout: "out-line", stderr: "err-line"}, pool: pool)

    assert_receive {:log, :info, "[" <> _ = out,
                    %{pool: ^pool, worker_id: ^id, os_pid: ^os_pid, snakepit_worker: ^id}},
                   10_000

    assert out =~ ~r/\] out-line$/

    assert_receive {:log, :warning, err, %{pool: ^pool, worker_id: ^id, os_pid: ^os_pid}},
                   10_000

    assert err =~ ~r/\] err-line$/
  end

  test "a line printed while a session's request runs carries the session id" do
    pool =
      start!(size: 1, adapter_args: ["--adapter", "cancellation_adapter.CancellationAdapter"])

    # The tool prints, then waits until cancelled: the line is read while the request runs.
    task =
      Task.async(fn ->
        Snakepit.execute_in_session("log-session", "wait_for_cancel", %{},
          pool: pool,
          timeout: 60_000
        )
      end)

    assert_receive {:log, :info, line, %{pool: ^pool, session_id: "log-session"}}, 10_000
    assert line =~ "wait_for_cancel started"
    Task.shutdown(task, :brutal_kill)
  end

  test "pool events about a worker carry its metadata; the pool's own carry the pool" do
    pool = start_test_workers!(size: 1)
    [%{id: id, os_pid: os_pid}] = Snakepit.list_workers(pool)
    System.cmd("kill", ["-KILL", "#{os_pid}"])

    assert_receive {:log, :warning, message, %{pool: ^pool, worker_id: ^id, os_pid: ^os_pid}},
                   10_000

    assert message =~ "exited"
    # Not a line the worker printed.
    refute_received {:log, _, ^message, %{snakepit_worker: _}}

    assert_receive {:log, :debug, ready, %{pool: ^pool, worker_id: new_id}} when new_id != id,
                   10_000

    assert ready =~ "ready"
  end

  test "log_python_output: false silences what workers print" do
    previous = Application.fetch_env(:snakepit, :log_python_output)
    Application.put_env(:snakepit, :log_python_output, false)

    on_exit(fn ->
      case previous do
        {:ok, value} -> Application.put_env(:snakepit, :log_python_output, value)
        :error -> Application.delete_env(:snakepit, :log_python_output)
      end
    end)

    silent = start_test_workers!(size: 1)
    assert {:ok, _} = Snakepit.execute("print", %{stdout: "hidden-line"}, pool: silent)

    # A pool started with output on logs its line; the silent one's line, printed first, never
    # came (its output is read and dropped in the native pool, before any message).
    Application.put_env(:snakepit, :log_python_output, true)
    loud = start_test_workers!(size: 1)
    assert {:ok, _} = Snakepit.execute("print", %{stdout: "shown-line"}, pool: loud)
    LogForwarder.assert_worker_logged(loud, "shown-line")
    refute_received {:log, _, _, %{pool: ^silent, snakepit_worker: _}}
  end
end
