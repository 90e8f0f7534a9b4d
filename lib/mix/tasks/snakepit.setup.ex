defmodule Mix.Tasks.Snakepit.Setup do
  @shortdoc "Creates a Python virtualenv and installs an adapter's requirements"

  @moduledoc """
  Creates a Python virtualenv for the workers and installs an adapter's `requirements.txt` in
  it with pip, printing each step; then prints the configuration that points pools at it.

      mix snakepit.setup
      mix snakepit.setup --requirements priv/python/my_adapter/requirements.txt
      mix snakepit.setup --venv /opt/venvs/workers --python python3.12

  Options:

    * `--venv PATH` - where the virtualenv goes (default: `.venv`, as upstream's).
    * `--requirements PATH` - a pip requirements file to install (default:
      `priv/python/requirements.txt` when it exists, else nothing is installed).
    * `--python PYTHON` - the interpreter that creates the virtualenv (default: as a pool finds
      one: `config :snakepit, python_executable: ...`, else `$SNAKEPIT_PYTHON`, else `python3`).

  Running it again is safe: an existing virtualenv is kept, and pip installs only what is
  missing. The bridge itself needs nothing from pip (it uses the standard library only).
  """

  use Mix.Task

  alias Snakepit.Adapters.Python

  @default_venv ".venv"
  @default_requirements "priv/python/requirements.txt"

  @impl Mix.Task
  def run(args) do
    {opts, rest, invalid} =
      OptionParser.parse(args, strict: [venv: :string, requirements: :string, python: :string])

    if rest != [] or invalid != [],
      do: Mix.raise("mix snakepit.setup: unknown arguments #{inspect(rest ++ invalid)}")

    Mix.Task.run("app.config")

    # Bad input is refused before anything is made.
    requirements = requirements(opts)
    venv = Path.expand(opts[:venv] || @default_venv)
    python = venv_python(venv)

    ensure_venv(venv, python, opts)
    install_requirements(python, requirements)

    Mix.shell().info("""

    Done. Point the pools at the virtualenv:

        config :snakepit, python_executable: #{inspect(python)}

    or `export SNAKEPIT_PYTHON=#{python}`, or the pool option `python_executable:`.\
    """)
  end

  defp venv_python(venv), do: Path.join([venv, "bin", "python"])

  defp ensure_venv(venv, python, opts) do
    if File.exists?(python) do
      Mix.shell().info("* virtualenv #{venv} exists (#{version(python)}); kept")
    else
      creator = creator(opts)
      Mix.shell().info("* creating virtualenv #{venv} with #{creator}")
      run!(creator, ["-m", "venv", venv], "create the virtualenv", venv_fix())
      Mix.shell().info("* created #{venv} (#{version(python)})")
    end
  end

  defp venv_fix,
    do:
      "on Debian/Ubuntu install the venv module (`apt-get install python3-venv`), or pass " <>
        "another interpreter with --python"

  # The interpreter creating the virtualenv, found as a pool finds its interpreter.
  defp creator(opts) do
    requested =
      Python.requested_interpreter(
        python_executable: opts[:python] || Application.get_env(:snakepit, :python_executable)
      )

    Python.resolve_interpreter(requested)
  rescue
    error in ArgumentError ->
      Mix.raise(
        "mix snakepit.setup: #{Exception.message(error)}; install Python 3.8 or later, " <>
          "or pass one with --python"
      )
  end

  defp requirements(opts) do
    case opts[:requirements] do
      nil ->
        if File.exists?(@default_requirements), do: @default_requirements

      path ->
        File.regular?(path) ||
          Mix.raise("mix snakepit.setup: requirements file #{inspect(path)} not found")

        path
    end
  end

  defp install_requirements(_python, nil),
    do:
      Mix.shell().info(
        "* no requirements to install (no #{@default_requirements}; pass --requirements PATH)"
      )

  defp install_requirements(python, path) do
    Mix.shell().info("* installing #{path} with pip")

    output =
      run!(
        python,
        ["-m", "pip", "install", "--disable-pip-version-check", "-r", path],
        "install #{path}",
        "check the requirements file and the network or package index pip uses"
      )

    # pip's summary: what it installed, or that everything was there already.
    case output |> String.split("\n") |> Enum.filter(&(&1 =~ ~r/^Successfully installed/)) do
      [] -> Mix.shell().info("* requirements of #{path} are installed")
      lines -> Enum.each(lines, &Mix.shell().info("* " <> &1))
    end
  end

  defp version(python) do
    case System.cmd(python, ["--version"], stderr_to_stdout: true) do
      {output, 0} -> String.trim(output)
      {output, _} -> "does not run: #{String.trim(output)}"
    end
  end

  defp run!(program, args, what, fix) do
    case System.cmd(program, args, stderr_to_stdout: true) do
      {output, 0} ->
        output

      {output, status} ->
        Mix.raise(
          "mix snakepit.setup: could not #{what} (`#{Enum.join([program | args], " ")}` " <>
            "exited with #{status}):\n#{String.trim(output)}\nFix: #{fix}"
        )
    end
  end
end
