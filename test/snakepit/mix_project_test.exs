defmodule Snakepit.MixProjectTest do
  # snakepit_rs as a user has it: the dependency of a scratch Mix project (by path) whose config
  # is upstream Snakepit's. Runs `mix` in its own BEAM.
  use ExUnit.Case, async: true

  @moduletag :tmp_dir
  @moduletag timeout: 300_000

  @script ~S"""
  {:ok, _} = Application.ensure_all_started(:snakepit)
  IO.puts("apps #{inspect(Enum.map(Application.started_applications(), &elem(&1, 0)))}")
  :ok = Snakepit.Pool.await_ready()
  :ok = Snakepit.Pool.await_ready(:batch)
  {:ok, _} = Snakepit.execute("ping", %{}, pool_name: :batch)
  IO.puts("batch requests #{Snakepit.get_stats(:batch).requests}")
  :ok = Application.stop(:snakepit)
  IO.puts("supervisor after stop #{inspect(Process.whereis(Snakepit.Supervisor))}")
  """

  test "config :snakepit and Application.ensure_all_started(:snakepit) work; Mix does not warn",
       %{tmp_dir: dir} do
    File.write!(Path.join(dir, "mix.exs"), """
    defmodule ScratchUser.MixProject do
      use Mix.Project

      def project,
        do: [app: :scratch_user, version: "0.1.0", deps: [{:snakepit_rs, path: #{inspect(File.cwd!())}}]]

      def application, do: [extra_applications: [:logger]]
    end
    """)

    File.mkdir_p!(Path.join(dir, "config"))

    File.write!(Path.join([dir, "config", "config.exs"]), """
    import Config

    config :snakepit,
      pooling_enabled: true,
      adapter_module: Snakepit.Adapters.TestWorker,
      pools: [%{name: :default, pool_size: 1}, %{name: :batch, pool_size: 1}]
    """)

    {output, status} =
      System.cmd("mix", ["run", "-e", @script],
        cd: dir,
        env: [{"MIX_ENV", "dev"}],
        stderr_to_stdout: true
      )

    assert status == 0, output
    refute output =~ "configured application"
    assert output =~ ~r/apps \[.*:snakepit_rs.*\]/
    assert output =~ ~r/apps \[.*:snakepit[,\]]/
    assert output =~ "batch requests 1"
    assert output =~ "supervisor after stop nil"
  end
end
