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

defmodule Mix.Tasks.Compile.SnakepitApp do
  @moduledoc false
  # Upstream Snakepit's application, `:snakepit`, provided by this package: its resource file
  # `snakepit.app`, written next to `snakepit_rs.app`, and its registration with the Mix VM.
  # See `SnakepitRs.MixProject.application/0` for how the two applications relate.
  use Mix.Task.Compiler

  @impl true
  def run(_args) do
    config = Mix.Project.config()
    target = Path.join(Mix.Project.compile_path(config), "snakepit.app")
    content = :io_lib.format(~c"~p.~n", [spec(config[:version])]) |> IO.iodata_to_binary()

    if File.read(target) == {:ok, content} do
      {:noop, []}
    else
      File.mkdir_p!(Path.dirname(target))
      File.write!(target, content)
      {:ok, []}
    end
  end

  @doc false
  # Loads `:snakepit` into the VM running Mix, unless it is loaded. See the end of this file.
  def register(version) do
    unless Application.spec(:snakepit, :vsn), do: :application.load(spec(version))
    :ok
  end

  defp spec(version) do
    {:application, :snakepit,
     [
       description: ~c"Snakepit's application, provided by snakepit_rs",
       vsn: String.to_charlist(version),
       # The modules belong to :snakepit_rs; listing them twice would clash in a release.
       modules: [],
       registered: [],
       applications: [:kernel, :stdlib, :elixir, :logger],
       mod: {Snakepit.Application, []}
     ]}
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
      compilers: [:snakepit_rs_cargo] ++ Mix.compilers() ++ [:snakepit_app],
      elixirc_paths: elixirc_paths(Mix.env()),
      deps: [],
      description:
        "Snakepit's API on a Rust worker-pool core: pools of Python (or any) worker processes",
      package: [
        files: ~w(lib native priv/python mix.exs Cargo.toml Cargo.lock README.md docs guides)
      ]
    ]
  end

  # Two OTP applications come from this package, both in its ebin:
  #
  #   * `:snakepit` (upstream's name; `snakepit.app`, written by `Compile.SnakepitApp` above)
  #     runs everything: `Snakepit.Supervisor` and the pools of `config :snakepit`. Upstream code
  #     starts and stops it by that name; upstream's tests expect `Application.stop(:snakepit)`
  #     to take `Snakepit.Supervisor` down.
  #   * `:snakepit_rs` (the package's name, what a user's mix.exs depends on, so what OTP starts
  #     with the user's application) starts `:snakepit` from its own callback.
  #
  # `:snakepit_rs` does not list `:snakepit` among its applications, although OTP would then
  # start it first and Mix would load it: `mix release` looks every listed application up by
  # directory name (`:code.lib_dir/1`), finds no `snakepit` directory and refuses to build, even
  # when it is optional (Elixir 1.14). In a release `snakepit.app` is copied with the ebin, and
  # `:snakepit_rs`'s callback loads and starts it from there.
  #
  # Mix warns about a configured application it has not loaded (`config :snakepit, ...`); it
  # loads the applications deps list, so the last line of this file registers `:snakepit`
  # instead: Mix evaluates this file in every project that depends on snakepit_rs, before that
  # check.
  #
  # The other way round (`:snakepit` a name for an application whose processes belong to
  # `:snakepit_rs`) was rejected: `Application.stop(:snakepit)` would stop nothing.
  def application do
    [extra_applications: [:logger, :crypto], mod: {Snakepit.Application, :package}]
  end

  defp elixirc_paths(:test), do: ["lib", "test/support"]
  defp elixirc_paths(_), do: ["lib"]
end

# See `application/0` above: upstream's application name exists in the VM running Mix.
Mix.Tasks.Compile.SnakepitApp.register(SnakepitRs.MixProject.project()[:version])
