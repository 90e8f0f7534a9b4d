defmodule Snakepit.SessionIdTest do
  use ExUnit.Case, async: true

  alias Snakepit.SessionId

  doctest SessionId

  test "generate/0: 32 random bytes in URL-safe base64 without padding" do
    ids = for _ <- 1..1_000, do: SessionId.generate()
    assert length(Enum.uniq(ids)) == 1_000

    for id <- ids do
      assert byte_size(id) == 43
      assert {:ok, <<_::binary-size(32)>>} = Base.url_decode64(id, padding: false)
      assert SessionId.valid?(id) and SessionId.validate(id) == :ok
    end
  end

  test "valid ids: 1 to 256 characters of A-Z, a-z, 0-9, _ and -" do
    for id <- [
          "a",
          "Z",
          "0",
          "_",
          "-",
          "session_123",
          "demo_session_-576460752303423",
          String.duplicate("x", 256)
        ] do
      assert SessionId.valid?(id), "#{inspect(id)} should be valid"
      assert SessionId.validate(id) == :ok
    end

    assert SessionId.max_length() == 256
  end

  test "invalid ids are :invalid_session_id errors saying what was given" do
    invalid =
      ["", String.duplicate("x", 257), "a b", "a.b", "a/b", "../x", "a\n", "\na", "a+b", "é"] ++
        ["a\0b", nil, :atom, 123, ~c"charlist", %{}]

    for id <- invalid do
      refute SessionId.valid?(id), "#{inspect(id)} should be invalid"

      assert {:error, %Snakepit.Error{reason: :invalid_session_id, category: :validation} = error} =
               SessionId.validate(id)

      assert error.details.session_id == id
      assert error.message =~ "1 to 256 characters of A-Z, a-z, 0-9, _ and -, got: "
    end

    {:error, error} = SessionId.validate("a b")
    assert Exception.message(error) =~ ~s(invalid_session_id: a session id must be)
    assert error.message =~ ~s(got: "a b")
  end
end
