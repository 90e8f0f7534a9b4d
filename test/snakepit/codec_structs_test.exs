defmodule Snakepit.CodecStructsTest do
  # Structs in args: the calendar ones are sent as the ISO 8601 strings Jason writes for them
  # (as upstream Snakepit sent them), any other is refused, naming it and where it was.
  use ExUnit.Case, async: true

  alias Snakepit.{Error, Native, TestPool}

  defmodule Point do
    defstruct [:x, :y]
  end

  # More than 32 fields: a struct stored as a hash map, whose keys come in hash order.
  defmodule Wide do
    defstruct for i <- 1..40, do: {:"field_#{i}", i}
  end

  describe "calendar structs are sent as Jason writes them (to_iso8601/1)" do
    setup do
      :rand.seed(:exsss, {7, 4, 5})
      :ok
    end

    test "DateTime: fractions of every precision, UTC and other offsets" do
      for _ <- 1..2_000 do
        datetime = %DateTime{
          year: Enum.random(-9999..99_999),
          month: Enum.random(1..12),
          day: Enum.random(1..28),
          hour: Enum.random(0..23),
          minute: Enum.random(0..59),
          second: Enum.random(0..59),
          microsecond: microsecond(),
          utc_offset: Enum.random([0, 0, 3600, -3600, 19_800, -12_600, 3661, -1, 50_400]),
          std_offset: Enum.random([0, 0, 3600]),
          time_zone: Enum.random(["Etc/UTC", "Europe/Paris", "Asia/Kolkata"]),
          zone_abbr: "X"
        }

        assert_json(datetime, DateTime.to_iso8601(datetime))
      end

      assert_json(~U[2024-01-02 03:04:05.123456Z], "2024-01-02T03:04:05.123456Z")
      assert_json(~U[2024-01-02 03:04:05.120Z], "2024-01-02T03:04:05.120Z")
      assert_json(~U[2024-01-02 03:04:05Z], "2024-01-02T03:04:05Z")
    end

    test "NaiveDateTime, Date and Time" do
      for _ <- 1..2_000 do
        date = %Date{
          year: Enum.random(-99_999..99_999),
          month: Enum.random(1..12),
          day: Enum.random(1..28)
        }

        time = %Time{
          hour: Enum.random(0..23),
          minute: Enum.random(0..59),
          second: Enum.random(0..59),
          microsecond: microsecond()
        }

        {:ok, naive} = NaiveDateTime.new(date, time)
        assert_json(date, Date.to_iso8601(date))
        assert_json(time, Time.to_iso8601(time))
        assert_json(naive, NaiveDateTime.to_iso8601(naive))
      end

      assert_json(~D[0000-01-01], "0000-01-01")
      assert_json(~T[01:02:03.000], "01:02:03.000")
      assert_json(~N[2024-01-02 03:04:05.000001], "2024-01-02T03:04:05.000001")
    end

    test "inside maps, lists and tuples, next to plain maps that merely look like structs" do
      args = %{
        at: ~U[2024-01-02 03:04:05Z],
        days: [~D[2024-01-02], {~T[10:00:00]}],
        plain: %{"__struct__" => "x"},
        not_a_module: %{__struct__: "x"}
      }

      assert {:ok, json} = Native.codec_to_json(args)

      assert Native.json_decode(json) ==
               {:ok,
                %{
                  "at" => "2024-01-02T03:04:05Z",
                  "days" => ["2024-01-02", ["10:00:00"]],
                  "plain" => %{"__struct__" => "x"},
                  "not_a_module" => %{"__struct__" => "x"}
                }}
    end

    test "a worker receives them as strings" do
      pool = TestPool.start_test_workers!(size: 1)
      now = DateTime.utc_now()
      expected = DateTime.to_iso8601(now)

      assert {:ok, %{"at" => ^expected, "on" => "2024-02-29"}} =
               Snakepit.execute("echo", %{at: now, on: ~D[2024-02-29]}, pool: pool)
    end

    test "another calendar or a broken calendar struct is refused, naming where" do
      assert {:error, message} =
               Native.codec_to_json(%{when: [%{~D[2024-01-02] | calendar: Some.Calendar}]})

      assert message =~ "a Date in calendar Some.Calendar cannot be sent"
      assert message =~ "args.when[0]"

      assert {:error, message} = Native.codec_to_json(%{t: %{~T[01:02:03] | microsecond: {1, 7}}})
      assert message =~ "a Time whose :microsecond field is missing or invalid"
      assert message =~ "args.t"

      assert {:error, message} =
               Native.codec_to_json(Map.delete(~U[2024-01-02 03:04:05Z], :time_zone))

      assert message =~ ":time_zone"
    end
  end

  describe "other structs are refused, naming the struct and where it was" do
    test "small and large structs, anywhere" do
      for {args, module, path} <- [
            {%{point: %Point{x: 1, y: 2}}, Point, "args.point"},
            {%{"list" => [1, URI.parse("http://x")]}, URI, ~s(args["list"][1])},
            {%{set: MapSet.new([1])}, MapSet, "args.set"},
            {%{wide: %Wide{}}, Wide, "args.wide"},
            {%Point{}, Point, "args"}
          ] do
        assert {:error, message} = Native.codec_to_json(args)
        assert message =~ "a #{inspect(module)} struct cannot be sent to a worker"
        assert message =~ "Map.from_struct/1"
        assert String.ends_with?(message, " at #{path}")
      end
    end

    test "as an :invalid_args error of the call" do
      pool = TestPool.start_test_workers!(size: 1)

      assert {:error, %Error{reason: :invalid_args, message: message}} =
               Snakepit.execute("echo", %{point: %Point{}}, pool: pool)

      assert message =~ "a Snakepit.CodecStructsTest.Point struct cannot be sent"
    end
  end

  defp assert_json(term, iso8601) do
    assert Native.codec_to_json(term) == {:ok, ~s("#{iso8601}")}
  end

  defp microsecond do
    precision = Enum.random(0..6)
    {Enum.random(0..999_999), precision}
  end
end
