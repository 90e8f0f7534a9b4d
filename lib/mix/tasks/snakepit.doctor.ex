defmodule Mix.Tasks.Snakepit.Doctor do
  @shortdoc "Checks what Snakepit needs: Python, the bridge, adapters, the NIF, leftovers"

  @moduledoc """
  Checks, one by one, what the pools of this project need, and prints for each whether it
  passes and, when it does not, how to fix it:

    * **Elixir/OTP** - the versions running (snakepit_rs needs Elixir 1.14+ and OTP 25+);
    * **NIF** - the Rust core (`priv/native/libsnakepit_rs.so`) loads and answers;
    * **Python** - each configured pool's interpreter is found, as the pool finds it
      (`python_executable`, else `$SNAKEPIT_PYTHON`, else `python3`), and its version;
    * **bridge** - `snakepit_bridge` (in snakepit_rs's `priv/python`) imports with it;
    * **adapter** - each pool's adapter class (`--adapter` in its `adapter_args`) imports with
      the pool's `PYTHONPATH`, and its tools are listed;
    * **orphans** - worker processes of earlier runs whose BEAM is gone, still running (the
      runs `Snakepit.ProcessRegistry` recorded).

  The pools checked are those `config :snakepit` describes (`Snakepit.Config.pools!/1`),
  whether or not `pooling_enabled` is set; nothing is started. Options:

    * `--python PATH` - check this interpreter instead of the configured ones.

  Exits with a non-zero status when a check fails.
  """

  use Mix.Task

  alias Snakepit.Adapters.Python

  @typedoc "One check's outcome: `:ok`, `:error` (with how to fix it) or `:skip`."
  @type result :: %{
          name: String.t(),
          status: :ok | :error | :skip,
          message: String.t(),
          fix: String.t() | nil
        }

  @python_adapters [Snakepit.Adapters.Python, Snakepit.Adapters.GRPCPython]
  @min_python {3, 8}
  @timeout 15_000

  @impl Mix.Task
  def run(args) do
    {opts, rest, invalid} = OptionParser.parse(args, strict: [python: :string])

    if rest != [] or invalid != [],
      do: Mix.raise("mix snakepit.doctor: unknown arguments #{inspect(rest ++ invalid)}")

    Mix.Task.run("app.config")
    results = checks(opts)
    Enum.each(results, &print/1)

    case Enum.count(results, &(&1.status == :error)) do
      0 -> Mix.shell().info("\nAll checks passed.")
      n -> Mix.raise("#{n} of #{length(results)} Snakepit checks failed; see the fixes above")
    end
  end

  @doc """
  Runs every check and returns their results in order (see the moduledoc);
  `opts[:python]` replaces the configured interpreters.
  """
  @spec checks(keyword()) :: [result()]
  def checks(opts \\ []) do
    base = [versions(), nif()]

    case pools(opts) do
      {:ok, pools} -> base ++ python_checks(pools) ++ [orphans()]
      {:error, result} -> base ++ [result, orphans()]
    end
  end

  defp print(%{status: :ok, name: name, message: message}),
    do: Mix.shell().info("[ok]   #{name}: #{message}")

  defp print(%{status: :skip, name: name, message: message}),
    do: Mix.shell().info("[skip] #{name}: #{message}")

  defp print(%{status: :error, name: name, message: message, fix: fix}) do
    Mix.shell().info("[FAIL] #{name}: #{message}")
    Mix.shell().info("       fix: #{fix}")
  end

  ## Elixir, OTP and the NIF

  defp versions do
    otp = System.otp_release()

    message =
      "Elixir #{System.version()}, Erlang/OTP #{otp} (erts #{:erlang.system_info(:version)})"

    if Version.match?(System.version(), ">= 1.14.0") and String.to_integer(otp) >= 25,
      do: ok("Elixir/OTP", message),
      else:
        error(
          "Elixir/OTP",
          message,
          "snakepit_rs needs Elixir 1.14+ and OTP 25+ (Debian: `apt-get install elixir erlang-dev erlang-nox`)"
        )
  end

  defp nif do
    path = Path.join(:code.priv_dir(:snakepit_rs), "native/libsnakepit_rs.so")

    try do
      {:ok, [1]} = Snakepit.Native.json_decode("[1]")
      ok("NIF", "loaded from #{path}")
    rescue
      error ->
        error(
          "NIF",
          "the Rust core does not load (#{Exception.message(error)})",
          "build it with `mix compile` (it runs cargo; Rust must be installed), " <>
            "then check that #{path} exists"
        )
    end
  end

  ## Python, the bridge and the adapters

  # The configured pools' options; a configuration that does not validate is a failed check.
  defp pools(opts) do
    # With defaults filled in, as the pools would get them.
    pools = Enum.map(Snakepit.Config.pools!(), &Snakepit.Pool.Options.validate!/1)

    pools =
      case opts[:python] do
        nil -> pools
        python -> Enum.map(pools, &Keyword.put(&1, :python_executable, python))
      end

    {:ok, pools}
  rescue
    error in ArgumentError ->
      {:error,
       error("configuration", Exception.message(error), "correct `config :snakepit` as it says")}
  end

  defp python_checks(pools) do
    {python_pools, others} = Enum.split_with(pools, &(&1[:adapter_module] in @python_adapters))

    by_interpreter = Enum.group_by(python_pools, &Python.requested_interpreter/1)
    results = Enum.flat_map(by_interpreter, &interpreter_checks/1)

    results ++
      for opts <- others do
        ok(
          "adapter of #{inspect(opts[:name])}",
          "#{inspect(opts[:adapter_module])} does not run Python; nothing to import"
        )
      end
  end

  defp interpreter_checks({requested, pools}) do
    case interpreter(requested) do
      {:ok, python, result} ->
        bridge = bridge(python)
        adapters = Enum.map(pools, &adapter(python, &1, bridge.status == :ok))
        [result, bridge | adapters]

      {:error, result} ->
        skipped = "needs a Python interpreter"
        adapters = Enum.map(pools, &skip("adapter of #{inspect(&1[:name])}", skipped))
        [result, skip("bridge", skipped) | adapters]
    end
  end

  @python_fix "install Python 3.8 or later, or point snakepit_rs at one: " <>
                "`config :snakepit, python_executable: \"/path/to/python3\"` or " <>
                "`export SNAKEPIT_PYTHON=/path/to/python3` (`mix snakepit.setup` makes a virtualenv)"

  defp interpreter(requested) do
    python = Python.resolve_interpreter(requested, @timeout)
    script = "import sys; print('.'.join(map(str, sys.version_info[:3])))"

    with {:ok, output} <- python(python, ["-c", script], []),
         {:ok, version} <- parse_version(output) do
      message = "#{requested} is #{python}, Python #{Enum.join(Tuple.to_list(version), ".")}"

      if Tuple.delete_at(version, 2) >= @min_python,
        do: {:ok, python, ok("Python", message)},
        else: {:error, error("Python", message <> ", older than 3.8", @python_fix)}
    else
      {:error, output} ->
        {:error, error("Python", "#{python} does not run: #{last_line(output)}", @python_fix)}
    end
  rescue
    # Not found, failed or silent past the timeout: the message says which.
    error in ArgumentError -> {:error, error("Python", Exception.message(error), @python_fix)}
  end

  defp parse_version(output) do
    case output |> last_line() |> String.split(".") |> Enum.map(&Integer.parse/1) do
      [{major, ""}, {minor, ""}, {patch, ""}] -> {:ok, {major, minor, patch}}
      _ -> {:error, output}
    end
  end

  defp bridge(python) do
    env = [{"PYTHONPATH", Python.bridge_path()}]

    case python(python, ["-c", "import snakepit_bridge as b; print(b.__version__)"], env) do
      {:ok, output} ->
        ok("bridge", "snakepit_bridge #{last_line(output)} imports from #{Python.bridge_path()}")

      {:error, output} ->
        error(
          "bridge",
          "snakepit_bridge does not import: #{last_line(output)}",
          "snakepit_rs's priv/python (#{Python.bridge_path()}) is incomplete: " <>
            "fetch and compile snakepit_rs again (`mix deps.compile snakepit_rs`)"
        )
    end
  end

  # Imports the adapter class as a worker would (the bridge's own loader, the pool's
  # environment) without initializing it, and lists its tools.
  @list_tools """
  import sys
  from snakepit_bridge.base_adapter import BaseAdapter, collect_tools
  from snakepit_bridge.loader import load_adapter_class
  cls = load_adapter_class(sys.argv[1]) if len(sys.argv) > 1 else BaseAdapter
  print("TOOLS " + " ".join(sorted(collect_tools(cls))))
  """

  defp adapter(_python, opts, false),
    do: skip("adapter of #{inspect(opts[:name])}", "needs the bridge")

  defp adapter(python, opts, true) do
    module = opts[:adapter_module]
    name = "adapter of #{inspect(opts[:name])}"
    class = adapter_class(module.script_args(opts))

    case python(python, ["-c", @list_tools | List.wrap(class)], module.env(opts)) do
      {:ok, output} ->
        tools = output |> String.split("\n") |> Enum.find_value(&tools_line/1)
        ok(name, "#{class || "the bridge's BaseAdapter (no --adapter)"}: tools #{tools}")

      {:error, output} ->
        error(
          name,
          "#{class} does not import: #{last_line(output)}",
          "check `--adapter package.module.Class` in the pool's adapter_args, that the " <>
            "package's parent directory is on the pool's PYTHONPATH (`adapter_env`/`env`: " <>
            "[{\"PYTHONPATH\", ...}]), and that its requirements are installed for #{python} " <>
            "(`mix snakepit.setup --requirements ...`)"
        )
    end
  end

  defp tools_line("TOOLS " <> tools), do: String.split(tools) |> Enum.join(", ")
  defp tools_line(_line), do: nil

  defp adapter_class(["--adapter", class | _]), do: class
  defp adapter_class(["--adapter=" <> class | _]), do: class
  defp adapter_class([_ | rest]), do: adapter_class(rest)
  defp adapter_class([]), do: nil

  # {:ok, output} when the interpreter exits 0, else {:error, output}.
  defp python(python, args, env) do
    case System.cmd(python, args, env: env, stderr_to_stdout: true) do
      {output, 0} -> {:ok, output}
      {output, status} -> {:error, "#{String.trim(output)} (exit status #{status})"}
    end
  rescue
    error in ErlangError -> {:error, "cannot run #{python}: #{inspect(error.original)}"}
  end

  defp last_line(output) do
    output |> String.trim() |> String.split("\n") |> List.last() |> to_string()
  end

  ## Leftovers of earlier runs

  defp orphans do
    dir = Snakepit.ProcessRegistry.dir()

    case Snakepit.ProcessRegistry.orphans(dir) do
      [] ->
        ok("orphans", "no worker of an earlier run is still running (#{dir})")

      orphans ->
        pids = Enum.map_join(orphans, " ", fn {_run, pid} -> Integer.to_string(pid) end)
        runs = orphans |> Enum.map(&elem(&1, 0)) |> Enum.uniq() |> Enum.join(", ")

        error(
          "orphans",
          "#{length(orphans)} worker process(es) of runs whose BEAM is gone still run: " <>
            "#{pids} (runs #{runs})",
          "kill them with their process groups (`kill -KILL -- -PID` for each), or start " <>
            "the application: it kills leftovers of dead runs as it starts"
        )
    end
  end

  defp ok(name, message), do: %{name: name, status: :ok, message: message, fix: nil}
  defp skip(name, message), do: %{name: name, status: :skip, message: message, fix: nil}
  defp error(name, message, fix), do: %{name: name, status: :error, message: message, fix: fix}
end
