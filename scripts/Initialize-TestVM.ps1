#Requires -Version 5.1
<#
.SYNOPSIS
    Prepares a Windows 10/11 x64 test VM for the TestDriver fast-mutex deadlock demo.

.DESCRIPTION
    Does, in this order, only what is not done yet:

      1. Checks that PowerShell runs elevated and that Windows is 64-bit.
      2. Turns test signing on with "bcdedit /set testsigning on", so that the
         test-signed TestDriver.sys built by "cargo make" can load. Secure Boot
         must be off for this: with Secure Boot on, bcdedit refuses to change the
         value (and the loader ignores it). The script checks Secure Boot first
         (Confirm-SecureBootUEFI) and stops with a message if it is on.
         Whether test signing is on is read without parsing any translated text:
         active in this boot = "TESTSIGNING" in the loader's SystemStartOptions
         (registry); configured for the next boot = the Boolean BCD element
         BcdLibraryBoolean_AllowPrereleaseSignatures (0x16000049) of the {current}
         entry, through the BCD WMI provider (root\WMI BcdObject.GetElement). When
         WMI cannot say, "bcdedit /set testsigning on" is simply run: it is idempotent.
         BitLocker: changing the boot configuration, or Secure Boot in the VM
         settings, makes a BitLocker-protected system drive ask for its recovery key
         at the next boot ("Before setting BCDEdit options you might need to disable
         or suspend BitLocker and Secure Boot", Microsoft's BCDEdit /set page). When
         BitLocker protects the system drive, the script first runs
         "Suspend-BitLocker -MountPoint <system drive> -RebootCount 1": protection
         resumes by itself after one reboot.
      3. Creates C:\Temp and C:\Temp2: FileCreationThread would write
         C:\Temp\file_N.txt and FileMoveThread would move them to C:\Temp2.
      4. Optionally (-EnableDriverVerifier) turns on Driver Verifier's deadlock
         detection for TestDriver.sys only ("verifier /flags 0x20 /driver TestDriver.sys";
         0x20 is bit 5, "deadlock detection"). Expected, NOT CONFIRMED (never
         run here): the recursive ExAcquireFastMutex no longer hangs silently and
         Driver Verifier stops the machine with bug check 0xC4
         (DRIVER_VERIFIER_DETECTED_VIOLATION), parameter 1 = 0x1000, parameter 2 =
         the address of the fast mutex. Microsoft's two pages do not say this in one
         place: "Bug Check 0xC4" lists parameter 1 = 0x1000, parameter 2 = the
         address of the resource, as "Self-deadlock: the current thread has tried to
         recursively acquire a resource" with Deadlock Detection on; "Deadlock
         Detection" says the option watches spin locks, mutexes and fast mutexes and
         lists "a thread that tries to acquire the same resource twice (a
         self-deadlock)" among its violations, without a code. Whether a fast mutex
         acquired twice takes the 0x1000 path has not been seen. Turn it off again
         with "verifier /reset" (or scripts\Remove-TestDriver.ps1 -ResetVerifier) and a reboot.
      5. Tells you to reboot (or reboots with -Restart). Test signing and Driver
         Verifier settings only take effect after a reboot.

    Run it in the VM, never on a machine you care about: test signing lowers the
    machine's protection, and the driver deadlocks two kernel threads for good.

    Assumptions (not verified here, no Windows was available when this was written):
      - The BCD WMI provider answers GetElement(0x16000049) on the {current} object
        ({fa926493-6f1c-4193-a414-58f0b2456d1e}) for an elevated PowerShell. Microsoft's
        "BCD WMI Provider Classes" page asks more of a client: membership of
        Administrators, the Backup and Restore privileges, and impersonation level
        Impersonate; the CIM cmdlets have no switch to enable those privileges. If the
        provider refuses (access denied, a privilege not held) or answers anything but
        "on", the script runs bcdedit, which is harmless: it is idempotent.
      - verifier.exe exits with 0 or 2 when it accepted new settings (2 is read as
        "accepted, reboot required"); any other code is reported as a failure.

.PARAMETER TestFolder
    Folders to create. Default: C:\Temp and C:\Temp2, the paths hard-coded in the driver.

.PARAMETER EnableDriverVerifier
    Also enable Driver Verifier deadlock detection (flag 0x20) for TestDriver.sys.

.PARAMETER DriverImageName
    Image name given to Driver Verifier. Default: TestDriver.sys.

.PARAMETER Restart
    Restart the computer at the end if a setting changed that needs a reboot.

.EXAMPLE
    PS C:\> .\scripts\Initialize-TestVM.ps1 -WhatIf
    Shows what would change, changes nothing.

.EXAMPLE
    PS C:\> .\scripts\Initialize-TestVM.ps1 -Restart
    Turns test signing on, creates C:\Temp and C:\Temp2, reboots.

.EXAMPLE
    PS C:\> .\scripts\Initialize-TestVM.ps1 -EnableDriverVerifier
    Same, plus Driver Verifier deadlock detection for TestDriver.sys (reboot yourself).

.NOTES
    Undo everything with scripts\Remove-TestDriver.ps1 -DisableTestSigning -ResetVerifier.
#>
[CmdletBinding(SupportsShouldProcess)]
param(
    [string[]]$TestFolder = @('C:\Temp', 'C:\Temp2'),

    [switch]$EnableDriverVerifier,

    [string]$DriverImageName = 'TestDriver.sys',

    [switch]$Restart
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 2.0

Import-Module -Name (Join-Path $PSScriptRoot 'TestDriver.Common.psm1') -Force

function Test-SecureBootOn {
    try {
        return [bool](Confirm-SecureBootUEFI)
    }
    catch {
        # BIOS firmware, or the cmdlet is not supported: Secure Boot cannot be on.
        return $false
    }
}

# {current}: the boot entry of the running Windows; its testsigning flag is the BCD element
# BcdLibraryBoolean_AllowPrereleaseSignatures (BcdLibraryElementTypes, Microsoft's BCD WMI reference).
$BCD_CURRENT_ENTRY = '{fa926493-6f1c-4193-a414-58f0b2456d1e}'
$BCD_ALLOW_PRERELEASE_SIGNATURES = [uint32]0x16000049

# $true / $false: test signing configured for the next boot; $null: WMI could not tell.
# Only $true skips "bcdedit /set testsigning on"; $false and $null both lead to it.
# Microsoft's "BCD WMI Provider Classes" page: a client must be an administrator, hold the Backup and
# Restore privileges and connect with impersonation level Impersonate. The CIM cmdlets have no switch
# to enable privileges for the call (as Get-WmiObject's -EnableAllPrivileges does), so the provider may
# refuse: access denied arrives here as an exception (-> $null, the caller says WMI could not tell) or
# as ReturnValue false (-> $false), and in both cases the caller falls back to bcdedit.
function Get-BcdTestSigning {
    try {
        $entry = New-CimInstance -Namespace 'root/WMI' -ClassName 'BcdObject' -Key @('Id', 'StoreFilePath') -ClientOnly `
            -Property @{ Id = $BCD_CURRENT_ENTRY; StoreFilePath = '' }
        $result = Invoke-CimMethod -InputObject $entry -MethodName 'GetElement' -Arguments @{ Type = $BCD_ALLOW_PRERELEASE_SIGNATURES }
        if (-not $result.ReturnValue) {
            # the element is not set (test signing was never turned on), or the provider refused:
            # either way the caller runs bcdedit
            return $false
        }
        return [bool]$result.Element.Boolean
    }
    catch {
        Write-Verbose "BCD WMI provider did not answer GetElement (access denied without the Backup/Restore privileges?): $($_.Exception.Message)"
        return $null
    }
}

function Get-TestSigningState {
    $startOptions = (Get-ItemProperty -Path 'HKLM:\SYSTEM\CurrentControlSet\Control' -Name SystemStartOptions).SystemStartOptions
    [pscustomobject]@{
        Configured = (Get-BcdTestSigning)
        Active     = ($startOptions -match 'TESTSIGNING')
    }
}

# 'On' when BitLocker protects the system drive, 'Off' (or 'Unknown') when not; $null when
# this Windows has no BitLocker cmdlets (Home editions) or the volume cannot be read.
function Get-SystemDriveBitLocker {
    if (-not (Get-Command -Name Get-BitLockerVolume -ErrorAction SilentlyContinue)) {
        return $null
    }
    try {
        return [string](Get-BitLockerVolume -MountPoint $env:SystemDrive).ProtectionStatus
    }
    catch {
        return $null
    }
}

Assert-Administrator

if (-not [Environment]::Is64BitOperatingSystem) {
    throw 'TestDriver.sys is an x64 driver: this Windows is 32-bit.'
}
$os = Get-CimInstance -ClassName Win32_OperatingSystem
Write-Host "Windows: $($os.Caption) build $($os.BuildNumber)"

$rebootNeeded = $false

# 1. Test signing (and, before touching the boot configuration, BitLocker)
$signing = Get-TestSigningState
$secureBootOn = $false
if (-not $signing.Active) {
    $secureBootOn = Test-SecureBootOn
}
if ($signing.Active) {
    Write-Host 'Test signing: active in this boot.'
}
elseif ($signing.Configured -eq $true -and -not $secureBootOn) {
    Write-Warning 'Test signing is configured but not active yet: reboot before installing the driver.'
    $rebootNeeded = $true
}
else {
    $bitLocker = Get-SystemDriveBitLocker
    if ($bitLocker -eq 'On') {
        $reason = 'the boot configuration change (bcdedit)'
        if ($secureBootOn) {
            $reason = 'turning Secure Boot off'
        }
        Write-Warning ("BitLocker protects ${env:SystemDrive}: $reason would make the next boot ask for the BitLocker " +
            'recovery key. Suspending it for one reboot (Suspend-BitLocker -RebootCount 1); it resumes by itself.')
        if ($PSCmdlet.ShouldProcess($env:SystemDrive, 'Suspend-BitLocker -RebootCount 1')) {
            Suspend-BitLocker -MountPoint $env:SystemDrive -RebootCount 1 | Out-Null
        }
    }
    elseif ($null -eq $bitLocker) {
        Write-Host 'BitLocker: no BitLocker cmdlets here (or the volume could not be read); if BitLocker protects this drive, suspend it first.'
    }
    if ($secureBootOn) {
        throw ('Secure Boot is on: bcdedit cannot turn test signing on while it is, and the loader would ignore it. ' +
            'Turn Secure Boot off in the VM settings (Hyper-V: Settings > Security > clear "Enable Secure Boot"), ' +
            'start the VM again and rerun this script.')
    }
    if ($null -eq $signing.Configured) {
        Write-Host 'Test signing: the boot configuration could not be read through WMI; setting it (bcdedit is idempotent).'
    }
    if ($PSCmdlet.ShouldProcess('boot configuration {current}', 'bcdedit /set testsigning on')) {
        $result = Invoke-NativeCommand -FilePath 'bcdedit.exe' -ArgumentList @('/set', 'testsigning', 'on')
        $result.Output | ForEach-Object { Write-Host "  $_" }
        if ($result.ExitCode -ne 0) {
            throw "bcdedit /set testsigning on failed with exit code $($result.ExitCode)."
        }
        Write-Host 'Test signing: turned on. It takes effect after a reboot ("Test Mode" shows on the desktop).'
        $rebootNeeded = $true
    }
}

# 2. Folders used by the driver's threads
foreach ($folder in $TestFolder) {
    if (Test-Path -LiteralPath $folder -PathType Container) {
        $count = @(Get-ChildItem -LiteralPath $folder -Force).Count
        Write-Host "Folder ${folder}: exists ($count item(s))."
        if ($count -gt 0) {
            Write-Warning "$folder is not empty. The demo's check is that C:\Temp stays empty: empty it first."
        }
    }
    elseif ($PSCmdlet.ShouldProcess($folder, 'Create folder')) {
        New-Item -ItemType Directory -Path $folder | Out-Null
        Write-Host "Folder ${folder}: created."
    }
}

# 3. Optional Driver Verifier deadlock detection
if ($EnableDriverVerifier) {
    if ($PSCmdlet.ShouldProcess($DriverImageName, 'verifier /flags 0x20 /driver (deadlock detection)')) {
        $result = Invoke-NativeCommand -FilePath 'verifier.exe' -ArgumentList @('/flags', '0x20', '/driver', $DriverImageName)
        $result.Output | ForEach-Object { Write-Host "  $_" }
        if (@(0, 2) -notcontains $result.ExitCode) {
            throw "verifier /flags 0x20 /driver $DriverImageName failed with exit code $($result.ExitCode)."
        }
        $rebootNeeded = $true
        $query = Invoke-NativeCommand -FilePath 'verifier.exe' -ArgumentList @('/querysettings')
        $query.Output | ForEach-Object { Write-Host "  $_" }
        if ($query.ExitCode -ne 0) {
            Write-Warning "verifier /querysettings exited with code $($query.ExitCode): check the settings by hand."
        }
        Write-Host ('Driver Verifier: deadlock detection set for ' + $DriverImageName +
            ' after the next reboot. Expected (not confirmed): bug check 0xC4 with parameter 1 = 0x1000, which ' +
            'Microsoft''s "Bug Check 0xC4" page lists as a self-deadlock, instead of a silent hang when the driver ' +
            'starts. Turn it off with "verifier /reset" and a reboot.')
    }
}

if ($rebootNeeded) {
    Restart-ComputerIfRequested -Cmdlet $PSCmdlet -Restart:$Restart -Message @('',
        'REBOOT NEEDED: run Restart-Computer, then continue with scripts\Install-TestDriver.ps1.')
}
else {
    Write-Host ''
    Write-Host 'Ready: continue with scripts\Install-TestDriver.ps1.'
}
