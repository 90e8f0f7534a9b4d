defmodule Snakepit.Applications do
  @moduledoc """
  Snakepit's OTP applications under both names: upstream's `:snakepit`, which runs the
  supervision tree (`Snakepit.Supervisor` and the pools), and the package's `:snakepit_rs`, which
  starts `:snakepit` (see `application/0` in mix.exs). Code that starts or stops Snakepit goes
  through here, so it does not depend on which name carries the tree, and still works where
  only `:snakepit_rs` exists.
  """

  @names [:snakepit, :snakepit_rs]

  @doc """
  Starts Snakepit (upstream's name when that application exists, else `:snakepit_rs`) with what
  it depends on. Returns the names among `:snakepit` and `:snakepit_rs` that this call started,
  in start order: an empty list means Snakepit was already running.
  """
  @spec ensure_started() :: {:ok, [atom()]} | {:error, term()}
  def ensure_started do
    app = if available?(:snakepit), do: :snakepit, else: :snakepit_rs

    with {:ok, started} <- Application.ensure_all_started(app),
         do: {:ok, Enum.filter(started, &(&1 in @names))}
  end

  @doc "The names among `:snakepit` and `:snakepit_rs` that are running, in start order."
  @spec running() :: [atom()]
  def running do
    # started_applications/0 lists the most recently started first.
    for({app, _, _} <- Application.started_applications(), app in @names, do: app)
    |> Enum.reverse()
  end

  @doc "Whether Snakepit runs under either name."
  @spec started?() :: boolean()
  def started?, do: running() != []

  @doc """
  Whether Snakepit's supervision tree (`Snakepit.Supervisor`, with the pools it starts) runs,
  whichever application carries it.
  """
  @spec tree_running?() :: boolean()
  def tree_running?, do: Process.whereis(Snakepit.Supervisor) != nil

  @doc "Stops `apps` (names as `ensure_started/0` or `running/0` return them), last started first."
  @spec stop([atom()]) :: :ok
  def stop(apps) do
    apps
    |> Enum.reverse()
    |> Enum.each(&Application.stop/1)
  end

  # Whether an application named `app` can be started: loaded already, or loadable.
  defp available?(app) do
    case Application.load(app) do
      :ok -> true
      {:error, {:already_loaded, ^app}} -> true
      {:error, _} -> false
    end
  end
end
