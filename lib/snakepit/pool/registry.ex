defmodule Snakepit.Pool.Registry do
  @moduledoc """
  Running pools by name: each name maps to its native pool (the resource the NIFs take) and the
  call defaults a request needs (`:queue_timeout`, `:timeout`).

  Entries live in `:persistent_term`: the request path reads one on every call, without a
  process hop or a copy; they are written only when a pool starts or stops.
  """

  alias Snakepit.Error

  @typedoc "What a call needs to know about a pool."
  @type entry :: {native :: reference(), queue_timeout :: pos_integer(), timeout :: pos_integer()}

  @doc "Registers a started pool under `name`, with the call defaults from its options."
  @spec register(atom(), reference(), keyword()) :: :ok
  def register(name, native, opts),
    do: :persistent_term.put(key(name), {native, opts[:queue_timeout], opts[:timeout]})

  @doc "Forgets the pool registered under `name`."
  @spec unregister(atom()) :: :ok
  def unregister(name) do
    :persistent_term.erase(key(name))
    :ok
  end

  @doc "The entry of a running pool, or `:pool_not_initialized`."
  @spec lookup(term()) :: {:ok, entry()} | {:error, Error.t()}
  def lookup(pool) do
    case :persistent_term.get(key(pool), nil) do
      nil -> {:error, not_running(pool)}
      entry -> {:ok, entry}
    end
  end

  @doc "The native pool of a running pool, or `nil`."
  @spec native(term()) :: reference() | nil
  def native(pool) do
    case :persistent_term.get(key(pool), nil) do
      {native, _, _} -> native
      nil -> nil
    end
  end

  @doc """
  The native pool of a running pool; raises `Snakepit.Error` when it is not running
  (introspecting a pool that does not run is a programming error).
  """
  @spec native!(term()) :: reference()
  def native!(pool), do: native(pool) || raise(not_running(pool))

  defp not_running(pool),
    do: Error.new(:pool_not_initialized, "pool #{inspect(pool)} is not running")

  # The key predates this module; bench/submit_nif.exs reads it directly.
  defp key(name), do: {Snakepit.Pool, name}
end
