defmodule Snakepit.SessionHelpers do
  @moduledoc """
  Sessions end to end, as the design documents' `Snakepit.SessionHelpers`: a call that makes
  sure its session is in `Snakepit.Bridge.SessionStore`, what is known of a session, and its
  end everywhere (store, the pool's affinity binding, the state kept on workers).

  Each function takes the pool as `pool:` (default `Snakepit.Pool`) and the store as
  `store:` (default `Snakepit.Bridge.SessionStore`). See `guides/sessions.md`.
  """

  alias Snakepit.Bridge.SessionStore
  alias Snakepit.{Error, Pool, SessionId}

  @doc """
  Runs `command` in session `session_id` (`Snakepit.execute_in_session/4`, every option of
  `Snakepit.execute/3` applies) after creating the session in the store if it is not there,
  or renewing it if it is. A full store (`:session_quota_exceeded`) or an invalid id is an
  error and nothing runs.
  """
  @spec execute_with_session(String.t(), String.t(), Snakepit.Call.args(), keyword()) ::
          {:ok, term()} | {:error, Error.t() | term()}
  def execute_with_session(session_id, command, args, opts \\ []) do
    {store, opts} = Keyword.pop(opts, :store, SessionStore)

    with :ok <- SessionId.validate(session_id),
         {:ok, _session} <- SessionStore.create_session(store, session_id, []) do
      Snakepit.execute_in_session(session_id, command, args, opts)
    end
  end

  @doc """
  What is known of session `session_id`: `{:ok, info}` with

    * `:session` - its `Snakepit.Bridge.Session` in the store, or `nil`
    * `:worker_id`, `:os_pid` - the worker the pool has it bound to (`nil` when it is not
      bound, or its worker is gone)
    * `:affinity` - the mode of its latest request (`nil` when not bound)
    * `:last_used_ms_ago` - ms since its latest request (`nil` when not bound)

  or `{:error, :not_found}` when neither the store nor the pool knows it.
  """
  @spec get_session_info(String.t(), keyword()) :: {:ok, map()} | {:error, term()}
  def get_session_info(session_id, opts \\ []) do
    with :ok <- SessionId.validate(session_id) do
      session =
        case SessionStore.get_session(Keyword.get(opts, :store, SessionStore), session_id) do
          {:ok, session} -> session
          {:error, :not_found} -> nil
        end

      binding = binding(Keyword.get(opts, :pool, Pool), session_id)

      if session == nil and binding == nil do
        {:error, :not_found}
      else
        binding = binding || %{}

        {:ok,
         %{
           session: session,
           worker_id: binding[:worker_id],
           os_pid: binding[:os_pid],
           affinity: binding[:affinity],
           last_used_ms_ago: binding[:idle_ms]
         }}
      end
    end
  end

  @doc """
  Ends session `session_id` everywhere: deletes it from the store and makes the pool forget
  its worker and tell its workers, which drop the session's state (after the adapter's
  `on_session_end` hook). `:ok` also when nothing knew the session.
  """
  @spec cleanup_session(String.t(), keyword()) :: :ok | {:error, Error.t()}
  def cleanup_session(session_id, opts \\ []) do
    with :ok <- SessionId.validate(session_id) do
      :ok = SessionStore.delete_session(Keyword.get(opts, :store, SessionStore), session_id)
      # Also for a session the store never held (a plain `execute_in_session/4`).
      _ = Pool.end_session(Keyword.get(opts, :pool, Pool), session_id)
      :ok
    end
  end

  defp binding(pool, session_id) do
    Pool.session_info(pool, session_id)
  rescue
    Error -> nil
  end
end
