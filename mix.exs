defmodule Mix.Tasks.Compile.SnakepitRsCargo do
  @moduledoc false
  # Builds the Rust workspace with cargo (release) and installs the NIF and its programs in
  # priv/native: libsnakepit_rs.so, snakepit_watchdog and snakepit_test_worker (a scriptable
  # worker for tests). It lives in mix.exs because a compiler defined under lib/ does not exist
  # yet on a clean build.
  use Mix.Task.Compiler

  @root __DIR__
  @artifacts ["libsnakepit_rs.so", "snakepit_watchdog", "snakepit_test_worker"]

  @impl true
  def run(_args) do
    targets = Enum.map(@artifacts, &Path.join([@root, "priv", "native", &1]))

    if stale?(targets) do
      build!(targets)
      {:ok, []}
    else
      {:noop, []}
    end
  end

  defp stale?(targets) do
    sources =
      Path.wildcard(Path.join(@root, "native/**/*.{rs,toml}")) ++
        Enum.map(["Cargo.toml", "Cargo.lock"], &Path.join(@root, &1))

    Mix.Utils.stale?(Enum.filter(sources, &File.exists?/1), targets)
  end

  defp build!(targets) do
    cargo =
      System.find_executable("cargo") || Mix.raise("snakepit_rs needs cargo (Rust) to build")

    Mix.shell().info("Compiling snakepit_rs (Rust) with cargo (release)")

    case System.cmd(cargo, ["build", "--release", "--workspace"],
           cd: @root,
           stderr_to_stdout: true,
           into: IO.stream(:stdio, :line)
         ) do
      {_, 0} -> :ok
      {_, status} -> Mix.raise("cargo build failed with status #{status}")
    end

    for target <- targets do
      File.mkdir_p!(Path.dirname(target))
      # Rename over the old file rather than overwrite it: a running BEAM may have it mapped.
      tmp = "#{target}.#{System.pid()}.tmp"
      File.cp!(Path.join([@root, "target", "release", Path.basename(target)]), tmp)
      File.rename!(tmp, target)
    end
  end
end

defmodule SnakepitRs.MixProject do
  use Mix.Project

  @version "0.1.0"

  def project do
    [
      app: :snakepit_rs,
      version: @version,
      elixir: "~> 1.14",
      start_permanent: Mix.env() == :prod,
      compilers: [:snakepit_rs_cargo] ++ Mix.compilers(),
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      description:
        "Snakepit's API on a Rust worker-pool core: pools of Python (or any) worker processes",
      package: [files: ~w(lib native priv/python mix.exs Cargo.toml Cargo.lock README.md docs)]
    ]
  end

  def application do
    [
      extra_applications: [:logger],
      mod: {Snakepit.Application, []}
    ]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end
