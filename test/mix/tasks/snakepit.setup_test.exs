defmodule Mix.Tasks.Snakepit.SetupTest do
  use ExUnit.Case, async: true

  import ExUnit.CaptureIO

  @moduletag :tmp_dir
  # Creating a virtualenv runs ensurepip: a few seconds.
  @moduletag timeout: 120_000

  test "creates the virtualenv, installs the requirements, and is idempotent", %{tmp_dir: dir} do
    venv = Path.join(dir, "venv")
    # No network here: a requirements file with nothing to fetch still goes through pip.
    requirements = Path.join(dir, "requirements.txt")
    File.write!(requirements, "# this adapter needs the standard library only\n")
    args = ["--venv", venv, "--requirements", requirements]

    output = capture_io(fn -> Mix.Task.rerun("snakepit.setup", args) end)
    python = Path.join([venv, "bin", "python"])

    assert output =~ "* creating virtualenv #{venv} with "
    assert output =~ ~r/\* created #{Regex.escape(venv)} \(Python 3\.\d+/
    assert output =~ "* installing #{requirements} with pip"
    assert output =~ "* requirements of #{requirements} are installed"
    assert output =~ "config :snakepit, python_executable: #{inspect(python)}"
    assert {"ok\n", 0} = System.cmd(python, ["-c", "print('ok')"])

    again = capture_io(fn -> Mix.Task.rerun("snakepit.setup", args) end)
    assert again =~ ~r/\* virtualenv #{Regex.escape(venv)} exists \(Python 3\.\d+\.\d+\); kept/
    refute again =~ "creating"
    assert again =~ "* requirements of #{requirements} are installed"
  end

  test "a missing requirements file or interpreter is refused before anything is made",
       %{tmp_dir: dir} do
    venv = Path.join(dir, "venv")

    assert_raise Mix.Error, ~r/requirements file ".*nope.txt" not found/, fn ->
      Mix.Task.rerun("snakepit.setup", ["--venv", venv, "--requirements", "nope.txt"])
    end

    missing = Path.join(dir, "no_python")

    assert_raise Mix.Error, ~r/Python interpreter ".*no_python" not found.*--python/, fn ->
      capture_io(fn -> Mix.Task.rerun("snakepit.setup", ["--venv", venv, "--python", missing]) end)
    end

    refute File.exists?(venv)

    assert_raise Mix.Error, ~r/unknown arguments/, fn ->
      Mix.Task.rerun("snakepit.setup", ["extra"])
    end
  end

  test "an interpreter that cannot make a virtualenv fails with the fix", %{tmp_dir: dir} do
    failing = Path.join(dir, "python_without_venv")

    File.write!(failing, """
    #!/bin/sh
    case "$2" in
      *sys.executable*) echo "$0" ;;
      *) echo "No module named venv" >&2; exit 1 ;;
    esac
    """)

    File.chmod!(failing, 0o755)
    args = ["--venv", Path.join(dir, "venv"), "--python", failing]

    error =
      assert_raise Mix.Error, fn ->
        capture_io(fn -> Mix.Task.rerun("snakepit.setup", args) end)
      end

    assert error.message =~ "could not create the virtualenv"
    assert error.message =~ "No module named venv"
    assert error.message =~ "apt-get install python3-venv"
  end
end
