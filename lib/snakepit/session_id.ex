defmodule Snakepit.SessionId do
  @moduledoc """
  Session ids: a generator and the validation every session entry point applies.

  A valid session id is a string of 1 to 256 characters, each one of `A-Z`, `a-z`, `0-9`, `_`
  and `-` (the design documents' `^[A-Za-z0-9_-]+$`, with nothing else allowed: not even the
  trailing newline that regex's `$` would let through). Such an id is safe in a file name, a
  URL, a log line and a protocol frame.

  The bound of 256 characters keeps a hostile or buggy caller from making every ETS key,
  affinity entry and request frame of a session arbitrarily large, while leaving room for the
  ids users build: a generated id is 43 characters, a UUID 36, and upstream's examples'
  `"demo_session_\#{System.unique_integer()}"` about 33.

      iex> id = Snakepit.SessionId.generate()
      iex> Snakepit.SessionId.valid?(id)
      true
      iex> Snakepit.SessionId.valid?("../etc/passwd")
      false
  """

  @max_length 256

  @doc """
  A new session id: 32 bytes from `:crypto.strong_rand_bytes/1` in URL-safe base64 without
  padding (43 characters). The design documents encode with plain base64, whose `+` and `/`
  their own validation rejects; this one always passes `validate/1`.
  """
  @spec generate() :: String.t()
  def generate, do: Base.url_encode64(:crypto.strong_rand_bytes(32), padding: false)

  @doc "The longest valid session id, in characters."
  @spec max_length() :: pos_integer()
  def max_length, do: @max_length

  @doc "Whether `term` is a valid session id (see the module doc)."
  @spec valid?(term()) :: boolean()
  def valid?(id) when is_binary(id) and byte_size(id) in 1..@max_length, do: id_chars?(id)
  def valid?(_term), do: false

  @doc """
  `:ok` for a valid session id, else `{:error, %Snakepit.Error{reason: :invalid_session_id}}`
  (category `:validation`) whose message says what a session id must be and what was given;
  `details.session_id` holds the value.
  """
  @spec validate(term()) :: :ok | {:error, Snakepit.Error.t()}
  def validate(id) do
    if valid?(id) do
      :ok
    else
      message =
        "a session id must be 1 to #{@max_length} characters of A-Z, a-z, 0-9, _ and -, " <>
          "got: #{inspect(id, limit: 5, printable_limit: 80)}"

      {:error, Snakepit.Error.new(:invalid_session_id, message, %{session_id: id})}
    end
  end

  # A byte loop rather than a regex: no `$`-before-newline pitfall, and no match engine.
  defp id_chars?(<<c, rest::binary>>)
       when c in ?a..?z or c in ?A..?Z or c in ?0..?9 or c == ?_ or c == ?-,
       do: id_chars?(rest)

  defp id_chars?(<<>>), do: true
  defp id_chars?(_rest), do: false
end
