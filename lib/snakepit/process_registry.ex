defmodule Snakepit.ProcessRegistry do
  @moduledoc """
  Records the OS pids of this VM's workers, so that a later start can kill leftovers of a run
  that ended without stopping its workers.

  Leftovers should not exist: workers exit when their request pipe closes, die with the BEAM
  (`PR_SET_PDEATHSIG`), and `snakepit_watchdog` kills their process groups (whatever they
  started) when the BEAM is gone. This registry is the last line, for what escaped all three.

  Each run (one BEAM) has a file `<run id>.pids` in `dir/0`: a header naming the BEAM's OS pid
  and start time, then one worker OS pid per line, appended by the Rust core as workers spawn.
  Every worker carries its run id in `SNAKEPIT_RUN_ID`. At start-up, for every other run whose
  BEAM is gone, each recorded process that still carries that run id (so never an unrelated
  process that reused the pid) is killed with its process group, and the file is removed.
  """

  require Logger

  @doc "Where run files live: `config :snakepit, process_registry_dir: ...`, else a temp dir."
  @spec dir() :: String.t()
  def dir do
    Application.get_env(:snakepit, :process_registry_dir) ||
      Path.join(System.tmp_dir!(), "snakepit_rs")
  end

  @doc "This run's file."
  @spec registry_file() :: String.t()
  def registry_file, do: Path.join(dir(), "#{Snakepit.Application.run_id()}.pids")

  @doc "The watchdog program, or nil if it was not built."
  @spec watchdog_path() :: String.t() | nil
  def watchdog_path do
    path = Path.join(:code.priv_dir(:snakepit_rs), "native/snakepit_watchdog")
    if File.exists?(path), do: path
  end

  @doc "Creates this run's file and kills leftovers of dead runs. Called when the application starts."
  @spec init() :: :ok
  def init do
    File.mkdir_p!(dir())

    unless File.exists?(registry_file()) do
      File.write!(registry_file(), "beam #{System.pid()} #{start_time(System.pid())}\n")
    end

    killed = cleanup_stale_runs()

    if killed != [] do
      Logger.warning(
        "killed #{length(killed)} leftover worker processes of earlier runs: #{inspect(killed)}"
      )
    end

    :ok
  end

  @doc "OS pids recorded for this run (including workers already gone)."
  @spec recorded_pids() :: [pos_integer()]
  def recorded_pids, do: read_run(registry_file()) |> elem(1)

  @doc "Removes this run's file (its workers are stopped). Called when the application stops."
  @spec forget_run() :: :ok
  def forget_run do
    File.rm(registry_file())
    :ok
  end

  @doc """
  Kills the recorded processes of every run in `dir` whose BEAM is gone, and removes those runs'
  files. Returns the OS pids killed.
  """
  @spec cleanup_stale_runs(String.t()) :: [pos_integer()]
  def cleanup_stale_runs(dir \\ dir()) do
    for {file, run_id, pids} <- stale_runs(dir),
        pid <- remove_and_return(file, pids),
        carries_run_id?(pid, run_id),
        do: kill_group(pid)
  end

  @doc """
  The processes `cleanup_stale_runs/1` would kill, without killing them: `{run_id, os_pid}` for
  each recorded worker of a run whose BEAM is gone that still runs with that run's id.
  `mix snakepit.doctor` reports them.
  """
  @spec orphans(String.t()) :: [{String.t(), pos_integer()}]
  def orphans(dir \\ dir()) do
    for {_file, run_id, pids} <- stale_runs(dir),
        pid <- pids,
        carries_run_id?(pid, run_id),
        do: {run_id, pid}
  end

  # The run files in `dir` of other runs whose BEAM is gone: `{file, run_id, recorded pids}`.
  defp stale_runs(dir) do
    own = Path.basename(registry_file(), ".pids")

    for file <- Path.wildcard(Path.join(dir, "*.pids")),
        run_id = Path.basename(file, ".pids"),
        run_id != own,
        {beam, pids} = read_run(file),
        not beam_alive?(beam),
        do: {file, run_id, pids}
  end

  defp remove_and_return(file, pids) do
    File.rm(file)
    pids
  end

  defp read_run(file) do
    case File.read(file) do
      {:ok, text} ->
        [header | lines] = String.split(text, "\n", trim: true) ++ [""]

        beam =
          case String.split(header) do
            ["beam", pid, started] -> {pid, started}
            _ -> nil
          end

        {beam, for(line <- lines, {pid, ""} <- [Integer.parse(line)], pid > 1, do: pid)}

      {:error, _} ->
        {nil, []}
    end
  end

  defp beam_alive?(nil), do: false
  defp beam_alive?({pid, started}), do: start_time(pid) == started

  # Field 22 of /proc/<pid>/stat: the process's start time, which tells a reused pid apart.
  defp start_time(pid) do
    case File.read("/proc/#{pid}/stat") do
      {:ok, stat} ->
        [_, after_name] = String.split(stat, ")", parts: 2) |> then(&(&1 ++ [""])) |> Enum.take(2)
        after_name |> String.split() |> Enum.at(19, "")

      {:error, _} ->
        "gone"
    end
  end

  defp carries_run_id?(pid, run_id) do
    case File.read("/proc/#{pid}/environ") do
      {:ok, environ} -> "SNAKEPIT_RUN_ID=#{run_id}" in String.split(environ, <<0>>)
      {:error, _} -> false
    end
  end

  defp kill_group(pid) do
    System.cmd("kill", ["-KILL", "--", "-#{pid}", "#{pid}"], stderr_to_stdout: true)
    pid
  end
end
