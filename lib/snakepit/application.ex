defmodule Snakepit.Application do
  @moduledoc false
  # The callback of both applications this package provides (see `application/0` in mix.exs):
  #
  #   * `:snakepit` (start args `[]`) runs `Snakepit.Supervisor`: the session store
  #     (`Snakepit.Bridge.SessionStore`, as upstream), the supervisor for pools and,
  #     with `config :snakepit, pooling_enabled: true`, the pools configured there
  #     (`Snakepit.Config`: the default pool `Snakepit.Pool`, and one more per extra entry of
  #     `pools:`).
  #   * `:snakepit_rs` (start args `:package`) only starts `:snakepit`.

  use Application
  require Logger

  @impl true
  def start(_type, :package) do
    with {:ok, _} <- Application.ensure_all_started(:snakepit, restart_type(:snakepit_rs)),
         {:ok, pid} <- Supervisor.start_link([], strategy: :one_for_one),
         do: {:ok, pid, :package}
  end

  def start(_type, _args) do
    # The configuration first: an invalid one raises before anything starts.
    env = Application.get_all_env(:snakepit)
    # The level first, so that `log_level` also quiets the warnings about the configuration.
    log_level = Snakepit.Config.log_level!(env)
    if log_level, do: Logger.put_application_level(:snakepit_rs, log_level)
    Enum.each(Snakepit.Config.ignored(env), &Logger.warning/1)

    pools =
      if Snakepit.Config.pooling_enabled?(env),
        do: Enum.map(Snakepit.Config.pools!(env), &{Snakepit.Pool, &1}),
        else: []

    Snakepit.Config.remember_default_pool(env)
    run_id()
    Snakepit.ProcessRegistry.init()

    # The session store first: pools may subscribe to session ends as they start, and stop
    # before it.
    children = [
      Snakepit.Bridge.SessionStore,
      {DynamicSupervisor, name: Snakepit.PoolSupervisor, strategy: :one_for_one} | pools
    ]

    case Supervisor.start_link(children, strategy: :one_for_one, name: Snakepit.Supervisor) do
      {:ok, pid} ->
        {:ok, pid, %{log_level: log_level}}

      error ->
        if log_level, do: Logger.delete_application_level(:snakepit_rs)
        error
    end
  end

  @impl true
  def stop(:package), do: :ok

  def stop(state) do
    # `log_level` sets our modules' Logger level for this run only.
    if state[:log_level], do: Logger.delete_application_level(:snakepit_rs)
    Snakepit.ProcessRegistry.forget_run()
  end

  # The restart type `app` is being started with (`:permanent` in a release), for `:snakepit`
  # to have the same; the application controller's `info/0` lists the applications starting.
  defp restart_type(app) do
    starting = Keyword.get(:application.info(), :starting, [])
    Enum.find_value(starting, :temporary, &(match?({^app, _, _, _}, &1) && elem(&1, 1)))
  end

  @doc """
  Identifies this VM's run; every worker gets it as `SNAKEPIT_RUN_ID`.
  """
  @spec run_id() :: String.t()
  def run_id do
    case :persistent_term.get({__MODULE__, :run_id}, nil) do
      nil ->
        # Unique enough across runs on one machine: the OS pid and the start time.
        id = "#{System.pid()}-#{System.system_time(:millisecond)}"
        :persistent_term.put({__MODULE__, :run_id}, id)
        id

      id ->
        id
    end
  end
end
