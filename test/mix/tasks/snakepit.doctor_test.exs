defmodule Mix.Tasks.Snakepit.DoctorTest do
  # Not async: the checks read `config :snakepit`, which these tests change.
  use ExUnit.Case, async: false

  import ExUnit.CaptureIO
  import Snakepit.TestPool, only: [os_process_alive?: 1, os_kill: 2, await_gone: 1]

  @moduletag :tmp_dir
  @adapter_dir Path.expand("../../support/python", __DIR__)

  setup %{tmp_dir: dir} do
    # Orphans are looked for in a directory of this test's own, so leftovers of other BEAMs
    # on this machine cannot change the outcome.
    env = Application.get_all_env(:snakepit)
    Application.put_env(:snakepit, :process_registry_dir, Path.join(dir, "runs"))

    on_exit(fn ->
      for {key, _} <- Application.get_all_env(:snakepit),
          not Keyword.has_key?(env, key),
          do: Application.delete_env(:snakepit, key)

      Application.put_all_env(snakepit: env)
    end)
  end

  test "every check passes on this machine, naming the interpreter and the tools" do
    output = capture_io(fn -> Mix.Task.rerun("snakepit.doctor") end)

    assert output =~ ~r/\[ok\]   Elixir\/OTP: Elixir #{Regex.escape(System.version())}/
    assert output =~ "[ok]   NIF: loaded from"
    assert output =~ ~r/\[ok\]   Python: \S+ is \S+, Python 3\.\d+\.\d+/
    assert output =~ ~r/\[ok\]   bridge: snakepit_bridge \S+ imports from/

    assert output =~
             "[ok]   adapter of Snakepit.Pool: the bridge's BaseAdapter (no --adapter): " <>
               "tools describe, echo, ping"

    assert output =~ "[ok]   orphans: no worker of an earlier run is still running"
    assert output =~ "All checks passed."
    refute output =~ "FAIL"
  end

  test "each configured pool's adapter is imported with its PYTHONPATH and its tools listed" do
    Application.put_env(:snakepit, :pools, [
      %{
        name: :default,
        adapter_args: ["--adapter", "snakepit_test_adapter.TestAdapter"],
        adapter_env: [{"PYTHONPATH", @adapter_dir}]
      },
      %{name: :beam, adapter_module: Snakepit.Adapters.TestWorker},
      %{name: :broken, adapter_args: ["--adapter", "no_such_package.Adapter"]}
    ])

    {output, error} = run_failing()

    assert output =~
             ~r/\[ok\]   adapter of Snakepit.Pool: snakepit_test_adapter.TestAdapter: tools .*echo/

    assert output =~ "[ok]   adapter of :beam: Snakepit.Adapters.TestWorker does not run Python"

    assert output =~
             "[FAIL] adapter of :broken: no_such_package.Adapter does not import: " <>
               "ModuleNotFoundError: No module named 'no_such_package'"

    assert output =~ "fix: check `--adapter package.module.Class` in the pool's adapter_args"
    assert error =~ "1 of 8 Snakepit checks failed"
  end

  test "an interpreter that is not there fails with the fix, and the checks needing it are skipped",
       %{tmp_dir: dir} do
    missing = Path.join(dir, "no_python")
    {output, error} = run_failing(["--python", missing])

    assert output =~ ~s([FAIL] Python: Python interpreter #{inspect(missing)} not found)
    assert output =~ "fix: install Python 3.8 or later, or point snakepit_rs at one"
    assert output =~ "[skip] bridge: needs a Python interpreter"
    assert output =~ "[skip] adapter of Snakepit.Pool: needs a Python interpreter"
    assert output =~ "[ok]   NIF"
    assert error =~ "1 of 6 Snakepit checks failed"
  end

  test "a configured interpreter too old, or one that cannot import the bridge, fails",
       %{tmp_dir: dir} do
    # Fake interpreters: each says it is its own sys.executable, then behaves as described.
    old = fake_python(dir, "old_python", ~s(echo 2.7.18))
    Application.put_env(:snakepit, :python_executable, old)
    {output, _} = run_failing()
    assert output =~ ~r/\[FAIL\] Python: .*Python 2\.7\.18, older than 3\.8/

    # -I (isolated mode) ignores PYTHONPATH, so the bridge is not found.
    isolated = fake_python(dir, "isolated_python", ~s(exec python3 -I "$@"))
    {output, error} = run_failing(["--python", isolated])

    assert output =~ ~r/\[ok\]   Python: .*isolated_python is .*isolated_python, Python 3/

    assert output =~
             "[FAIL] bridge: snakepit_bridge does not import: " <>
               "ModuleNotFoundError: No module named 'snakepit_bridge'"

    assert output =~ "fix: snakepit_rs's priv/python"
    assert output =~ "[skip] adapter of Snakepit.Pool: needs the bridge"
    assert error =~ "1 of 6 Snakepit checks failed"
  end

  test "workers of a dead run still running are reported as orphans", %{tmp_dir: dir} do
    runs = Path.join(dir, "runs")
    File.mkdir_p!(runs)
    # A process carrying the run id of a run whose BEAM (pid 999999) is gone.
    port =
      Port.open({:spawn_executable, System.find_executable("sleep")},
        args: ["60"],
        env: [{~c"SNAKEPIT_RUN_ID", ~c"999999-1"}]
      )

    {:os_pid, orphan} = Port.info(port, :os_pid)
    File.write!(Path.join(runs, "999999-1.pids"), "beam 999999 1\n#{orphan}\n")

    {output, _} = run_failing()

    assert output =~
             "[FAIL] orphans: 1 worker process(es) of runs whose BEAM is gone still run: " <>
               "#{orphan} (runs 999999-1)"

    # Reporting kills nothing.
    assert os_process_alive?(orphan)
    os_kill(orphan, "KILL")
    await_gone([orphan])
  end

  test "unknown arguments are refused" do
    assert_raise Mix.Error, ~r/unknown arguments/, fn ->
      Mix.Task.rerun("snakepit.doctor", ["--bogus"])
    end
  end

  # Runs the task, which must fail: the printed output and the error's message.
  defp run_failing(args \\ []) do
    parent = self()

    output =
      capture_io(fn ->
        error = assert_raise(Mix.Error, fn -> Mix.Task.rerun("snakepit.doctor", args) end)
        send(parent, {:error, Exception.message(error)})
      end)

    assert_received {:error, message}
    {output, message}
  end

  defp fake_python(dir, name, otherwise) do
    path = Path.join(dir, name)

    File.write!(path, """
    #!/bin/sh
    case "$2" in
      *sys.executable*) echo "$0" ;;
      *version_info*) #{if otherwise =~ "echo", do: otherwise, else: ~s(exec python3 "$@")} ;;
      *) #{otherwise} ;;
    esac
    """)

    File.chmod!(path, 0o755)
    path
  end
end
