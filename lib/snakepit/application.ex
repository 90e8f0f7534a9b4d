defmodule Snakepit.Application do
  @moduledoc false
  # Starts the supervisor for pools and, when `config :snakepit, pooling_enabled: true`, the
  # default pool `Snakepit.Pool` configured from the `:snakepit` application environment.

  use Application

  @impl true
  def start(_type, _args) do
    run_id()
    Snakepit.ProcessRegistry.init()

    pools =
      if Application.get_env(:snakepit, :pooling_enabled, false),
        do: [{Snakepit.Pool, Snakepit.Config.pool_options()}],
        else: []

    children = [
      {DynamicSupervisor, name: Snakepit.PoolSupervisor, strategy: :one_for_one} | pools
    ]

    Supervisor.start_link(children, strategy: :one_for_one, name: Snakepit.Supervisor)
  end

  @impl true
  def stop(_state), do: Snakepit.ProcessRegistry.forget_run()

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
