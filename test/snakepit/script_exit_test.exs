defmodule Snakepit.ScriptExitTest do
  # `run_as_script/2`'s `:exit_mode` ends the VM, so each case runs in a VM of its own
  # (`elixir` with this build's code path) and the test reads its exit status and output. No
  # VM or worker outlives its test: each VM is killed at the end if still running, and tests
  # that start workers wait until they are gone.
  use ExUnit.Case, async: true

  alias Snakepit.TestPool

  @script Path.expand("../support/scripts/run_as_script.exs", __DIR__)

  test "exit_mode :halt halts with status 0 when the function returns" do
    {output, status} = run_script(["--exit-mode", "halt"])
    assert status == 0
    refute output =~ "AFTER"
  end

  test "exit_mode :halt halts with status 1 when the function raises" do
    {output, status} = run_script(["--exit-mode", "halt", "--raise"])
    assert status == 1
    refute output =~ "AFTER"
  end

  test "exit_mode :stop ends a VM that would not halt by itself, with status 0 or 1" do
    assert {_, 0} = run_script(["--exit-mode", "stop"], elixir: ["--no-halt"])
    assert {_, 1} = run_script(["--exit-mode", "stop", "--raise"], elixir: ["--no-halt"])
  end

  test "exit_mode :auto stops a -no_halt VM when the script started Snakepit" do
    {output, status} =
      run_script(["--exit-mode", "auto"], elixir: ["--no-halt", "--erl", "-no_halt"])

    assert status == 0
    refute output =~ "AFTER"
  end

  test "exit_mode :auto returns to the caller when the VM halts by itself" do
    {output, status} = run_script(["--exit-mode", "auto"])
    assert status == 0
    assert output =~ "AFTER :done"
  end

  test "exit_mode :none (the default) returns the function's value" do
    {output, 0} = run_script([])
    assert output =~ "AFTER :done"
  end

  test "SNAKEPIT_SCRIPT_EXIT chooses the exit mode when the option is absent" do
    {output, status} = run_script(["--raise"], env: [{"SNAKEPIT_SCRIPT_EXIT", " HALT "}])
    assert status == 1
    refute output =~ "boom"
  end

  test "upstream's SNAKEPIT_SCRIPT_HALT means :halt; an :exit_mode option wins over it" do
    {output, 0} = run_script([], env: [{"SNAKEPIT_SCRIPT_HALT", "true"}])
    refute output =~ "AFTER"

    {output, 0} = run_script(["--exit-mode", "none"], env: [{"SNAKEPIT_SCRIPT_HALT", "true"}])
    assert output =~ "AFTER :done"
  end

  test "halting leaves no worker process, also with stop_mode :never" do
    for stop_mode <- ["if_started", "never"] do
      {output, 0} = run_script(["--pool", "--exit-mode", "halt", "--stop-mode", stop_mode])
      [_, pids] = Regex.run(~r/WORKERS ([\d ]+)/, output)
      os_pids = pids |> String.split() |> Enum.map(&String.to_integer/1)
      assert length(os_pids) == 2
      TestPool.await_gone(os_pids)
    end
  end

  # Runs the script in a new VM and returns its output and exit status.
  defp run_script(args, opts \\ []) do
    ebin = Application.app_dir(:snakepit_rs, "ebin")
    env = [{"SNAKEPIT_SCRIPT_EXIT", false}, {"SNAKEPIT_SCRIPT_HALT", false} | opts[:env] || []]

    port =
      Port.open({:spawn_executable, System.find_executable("elixir")}, [
        :binary,
        :exit_status,
        :stderr_to_stdout,
        args: (opts[:elixir] || []) ++ ["-pa", ebin, @script | args],
        # open_port/2 takes charlists; `false` unsets a variable.
        env: for({name, value} <- env, do: {~c"#{name}", value && ~c"#{value}"})
      ])

    {:os_pid, os_pid} = Port.info(port, :os_pid)
    on_exit(fn -> if TestPool.os_process_alive?(os_pid), do: TestPool.os_kill(os_pid, "KILL") end)
    collect(port, "")
  end

  defp collect(port, output) do
    receive do
      {^port, {:data, data}} -> collect(port, output <> data)
      {^port, {:exit_status, status}} -> {output, status}
    end
  end
end
